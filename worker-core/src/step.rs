//! What a run that is a workflow's step carries: which workflow and step
//! it is, its parents, and, once they have all succeeded, their outputs,
//! which the worker reads with `ctx.parent_output`. In this process it
//! also reports the step's start, messages and end to its workflow (a
//! [`StepSink`]), in the step's own task: a workflow needs no task of its
//! own to follow its steps.

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::workflow::Plan;

/// Where a step reports what happens to it: its workflow, in this
/// process.
pub(crate) trait StepSink: Send + Sync + fmt::Debug {
    /// The step's run started executing.
    fn started(&self, step: usize);
    /// Its worker emitted `message`.
    fn message(&self, step: usize, message: &Value);
    /// Its run ended, once, with `outcome`.
    fn ended(&self, step: usize, outcome: &Result<Value>);
}

/// A step's identity and its parents' outputs: of a workflow of this
/// process, or of a stored one whose step a backend claimed.
pub(crate) enum StepOf {
    Local(LocalStep),
    Stored(StoredStep),
}

pub(crate) struct LocalStep {
    plan: Arc<Plan>,
    /// Its index in `plan.steps`.
    index: usize,
    /// The parents' outputs, in the order of its parents: set once, when
    /// the last of them has succeeded.
    outputs: OnceLock<Box<[Value]>>,
    /// Its workflow, while it runs (weak: the workflow holds the step's
    /// run).
    sink: Weak<dyn StepSink>,
}

/// A claimed step: what the backend stored with it.
pub(crate) struct StoredStep {
    workflow_text: Box<str>,
    name: Box<str>,
    /// `{"parent": {"worker": .., "output": ..}}`.
    inputs: Value,
}

impl fmt::Debug for StepOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepOf")
            .field("workflow", &self.workflow_text())
            .field("step", &self.name())
            .finish_non_exhaustive()
    }
}

impl StepOf {
    /// Step `index` of `plan`, reporting to `sink`.
    pub(crate) fn new(plan: Arc<Plan>, index: usize, sink: Weak<dyn StepSink>) -> Self {
        StepOf::Local(LocalStep {
            plan,
            index,
            outputs: OnceLock::new(),
            sink,
        })
    }

    /// A stored workflow's step, with its parents' outputs as the backend
    /// keeps them: `{"parent": {"worker": .., "output": ..}}`.
    pub(crate) fn stored(workflow: &str, name: &str, inputs: Value) -> Self {
        StepOf::Stored(StoredStep {
            workflow_text: workflow.into(),
            name: name.into(),
            inputs,
        })
    }

    pub(crate) fn workflow_text(&self) -> &str {
        match self {
            StepOf::Local(step) => step.plan.id_text(),
            StepOf::Stored(step) => &step.workflow_text,
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            StepOf::Local(step) => &step.plan.steps[step.index].name,
            StepOf::Stored(step) => &step.name,
        }
    }

    fn sink(&self) -> Option<(Arc<dyn StepSink>, usize)> {
        match self {
            StepOf::Local(step) => Some((step.sink.upgrade()?, step.index)),
            StepOf::Stored(_) => None,
        }
    }

    /// Its parents have all succeeded, with these outputs (in the order of
    /// its parents).
    pub(crate) fn set_outputs(&self, outputs: Vec<Value>) {
        if let StepOf::Local(step) = self {
            let _ = step.outputs.set(outputs.into_boxed_slice());
        }
    }

    /// A parent's output read as `T`.
    pub(crate) fn parent_output<T: DeserializeOwned>(&self, parent: &str) -> Result<T> {
        let (output, worker) = match self {
            StepOf::Local(step) => {
                let steps = &step.plan.steps;
                let parents = &steps[step.index].parents;
                let Some(at) = parents.iter().position(|&p| steps[p].name == parent) else {
                    let names = parents.iter().map(|&p| steps[p].name.as_str());
                    return Err(self.not_a_parent(parent, names.collect()));
                };
                let output = step
                    .outputs
                    .get()
                    .and_then(|outputs| outputs.get(at))
                    .ok_or_else(|| {
                        Error::msg(format!(
                            "step '{}' started before the output of its parent '{parent}' was known",
                            self.name()
                        ))
                    })?;
                (output, steps[parents[at]].worker.as_str())
            }
            StepOf::Stored(step) => {
                let Some(input) = step.inputs.get(parent) else {
                    let names = step.inputs.as_object().map(|inputs| {
                        let mut names: Vec<&str> = inputs.keys().map(String::as_str).collect();
                        names.sort_unstable();
                        names
                    });
                    return Err(self.not_a_parent(parent, names.unwrap_or_default()));
                };
                (
                    input.get("output").unwrap_or(&Value::Null),
                    input
                        .get("worker")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
            }
        };
        T::deserialize(output).map_err(|error| Error::StepOutputMismatch {
            step: parent.to_owned(),
            worker: worker.to_owned(),
            reason: error.to_string(),
        })
    }

    fn not_a_parent(&self, parent: &str, parents: Vec<&str>) -> Error {
        Error::validation(format!(
            "step '{}' asked for the output of step '{parent}', which is not one of its parents ({}); declare it with .after([\"{parent}\"])",
            self.name(),
            if parents.is_empty() {
                "it has none".to_owned()
            } else {
                format!("its parents: {}", parents.join(", "))
            }
        ))
    }

    /// The step's run starts executing.
    pub(crate) fn started(&self) {
        if let Some((sink, index)) = self.sink() {
            sink.started(index);
        }
    }

    /// Its worker emitted `message`.
    pub(crate) fn message(&self, message: &Value) {
        if let Some((sink, index)) = self.sink() {
            sink.message(index, message);
        }
    }

    /// Its run ended.
    pub(crate) fn ended(&self, outcome: &Result<Value>) {
        if let Some((sink, index)) = self.sink() {
            sink.ended(index, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;
    use crate::options::WorkerOptions;
    use crate::workflow::Workflow;
    use serde_json::json;

    #[test]
    fn a_parents_output_reads_typed_and_every_mistake_names_the_step() {
        let plan = Workflow::new("w")
            .step("avatar", "resize-image", Call::new())
            .step("page", "render-page", Call::new())
            .step("welcome", "send-email", Call::new())
            .after(["avatar", "page"])
            .plan(|worker, call| call.resolve(worker, &WorkerOptions::new()))
            .unwrap();
        let sink: Weak<dyn StepSink> = Weak::<Nowhere>::new();
        let step = StepOf::new(Arc::new(plan), 2, sink);
        step.set_outputs(vec![json!({"url": "a.png"}), json!(3)]);
        assert_eq!(step.parent_output::<u32>("page").unwrap(), 3);
        let not_parent = step.parent_output::<Value>("profile").unwrap_err();
        assert!(not_parent.is_validation());
        assert!(
            not_parent
                .to_string()
                .contains("'profile', which is not one of its parents (its parents: avatar, page)"),
            "{not_parent}"
        );
        let mismatch = step.parent_output::<String>("avatar").unwrap_err();
        assert!(
            mismatch.to_string().starts_with(
                "the output of step 'avatar' (worker 'resize-image') is not the requested type"
            ),
            "{mismatch}"
        );
    }

    #[test]
    fn a_stored_steps_parents_read_the_same() {
        let step = StepOf::stored(
            "w-1",
            "welcome",
            json!({"page": {"worker": "render-page", "output": 3}, "avatar": {"worker": "resize-image", "output": "a.png"}}),
        );
        assert_eq!(step.parent_output::<u32>("page").unwrap(), 3);
        let not_parent = step.parent_output::<Value>("profile").unwrap_err();
        assert!(
            not_parent
                .to_string()
                .contains("(its parents: avatar, page)"),
            "{not_parent}"
        );
        let mismatch = step.parent_output::<u32>("avatar").unwrap_err();
        assert!(
            mismatch
                .to_string()
                .starts_with("the output of step 'avatar' (worker 'resize-image')"),
            "{mismatch}"
        );
        assert_eq!((step.workflow_text(), step.name()), ("w-1", "welcome"));
    }

    #[derive(Debug)]
    struct Nowhere;

    impl StepSink for Nowhere {
        fn started(&self, _: usize) {}
        fn message(&self, _: usize, _: &Value) {}
        fn ended(&self, _: usize, _: &Result<Value>) {}
    }
}
