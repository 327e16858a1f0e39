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

/// A step's identity and its parents' outputs.
pub(crate) struct StepOf {
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

impl fmt::Debug for StepOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepOf")
            .field("workflow", &self.plan.id)
            .field("step", &self.name())
            .finish_non_exhaustive()
    }
}

impl StepOf {
    /// Step `index` of `plan`, reporting to `sink`.
    pub(crate) fn new(plan: Arc<Plan>, index: usize, sink: Weak<dyn StepSink>) -> Self {
        StepOf {
            plan,
            index,
            outputs: OnceLock::new(),
            sink,
        }
    }

    pub(crate) fn workflow_text(&self) -> &str {
        self.plan.id_text()
    }

    pub(crate) fn name(&self) -> &str {
        &self.plan.steps[self.index].name
    }

    /// Its parents have all succeeded, with these outputs (in the order of
    /// its parents).
    pub(crate) fn set_outputs(&self, outputs: Vec<Value>) {
        let _ = self.outputs.set(outputs.into_boxed_slice());
    }

    /// A parent's output read as `T`.
    pub(crate) fn parent_output<T: DeserializeOwned>(&self, parent: &str) -> Result<T> {
        let parents = &self.plan.steps[self.index].parents;
        let Some(at) = parents
            .iter()
            .position(|&p| self.plan.steps[p].name == parent)
        else {
            let names: Vec<&str> = parents
                .iter()
                .map(|&p| self.plan.steps[p].name.as_str())
                .collect();
            return Err(Error::validation(format!(
                "step '{}' asked for the output of step '{parent}', which is not one of its parents ({}); declare it with .after([\"{parent}\"])",
                self.name(),
                if names.is_empty() {
                    "it has none".to_owned()
                } else {
                    format!("its parents: {}", names.join(", "))
                }
            )));
        };
        let output = self
            .outputs
            .get()
            .and_then(|outputs| outputs.get(at))
            .ok_or_else(|| {
                Error::msg(format!(
                    "step '{}' started before the output of its parent '{parent}' was known",
                    self.name()
                ))
            })?;
        T::deserialize(output).map_err(|error| Error::StepOutputMismatch {
            step: parent.to_owned(),
            worker: self.plan.steps[parents[at]].worker.clone(),
            reason: error.to_string(),
        })
    }

    /// The step's run starts executing.
    pub(crate) fn started(&self) {
        if let Some(sink) = self.sink.upgrade() {
            sink.started(self.index);
        }
    }

    /// Its worker emitted `message`.
    pub(crate) fn message(&self, message: &Value) {
        if let Some(sink) = self.sink.upgrade() {
            sink.message(self.index, message);
        }
    }

    /// Its run ended.
    pub(crate) fn ended(&self, outcome: &Result<Value>) {
        if let Some(sink) = self.sink.upgrade() {
            sink.ended(self.index, outcome);
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

    #[derive(Debug)]
    struct Nowhere;

    impl StepSink for Nowhere {
        fn started(&self, _: usize) {}
        fn message(&self, _: usize, _: &Value) {}
        fn ended(&self, _: usize, _: &Result<Value>) {}
    }
}
