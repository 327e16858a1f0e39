//! What a run that is a workflow's step carries: which workflow and step
//! it is, its parents' names, and, once they have all succeeded, their
//! outputs, which the worker reads with `ctx.parent_output`. In this
//! process it also tells the workflow's driver the moment the step starts.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::workflow::WorkflowId;

/// A step's identity and its parents' outputs.
#[derive(Debug)]
pub(crate) struct StepOf {
    /// The workflow's id as text, for `ctx.workflow_id()`.
    workflow_text: Box<str>,
    name: Box<str>,
    /// Its parents' names and the workers they ran, in declared order.
    parents: Box<[(Box<str>, Box<str>)]>,
    /// The parents' outputs, in the order of `parents`: set once, when the
    /// last of them has succeeded.
    outputs: OnceLock<Box<[Value]>>,
    started: AtomicBool,
    starts: Notify,
}

impl StepOf {
    /// A step whose parents (`(step, worker)` pairs) haven't all ended.
    pub(crate) fn new(
        workflow: WorkflowId,
        name: &str,
        parents: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        StepOf {
            workflow_text: workflow.to_string().into_boxed_str(),
            name: name.into(),
            parents: parents
                .into_iter()
                .map(|(step, worker)| (step.into_boxed_str(), worker.into_boxed_str()))
                .collect(),
            outputs: OnceLock::new(),
            started: AtomicBool::new(false),
            starts: Notify::new(),
        }
    }

    pub(crate) fn workflow_text(&self) -> &str {
        &self.workflow_text
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Its parents have all succeeded, with these outputs (in the order of
    /// its parents).
    pub(crate) fn set_outputs(&self, outputs: Vec<Value>) {
        let _ = self.outputs.set(outputs.into_boxed_slice());
    }

    /// A parent's output read as `T`.
    pub(crate) fn parent_output<T: DeserializeOwned>(&self, parent: &str) -> Result<T> {
        let Some(at) = self.parents.iter().position(|(name, _)| &**name == parent) else {
            let parents: Vec<&str> = self.parents.iter().map(|(name, _)| &**name).collect();
            return Err(Error::validation(format!(
                "step '{}' asked for the output of step '{parent}', which is not one of its parents ({}); declare it with .after([\"{parent}\"])",
                self.name,
                if parents.is_empty() {
                    "it has none".to_owned()
                } else {
                    format!("its parents: {}", parents.join(", "))
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
                    self.name
                ))
            })?;
        T::deserialize(output).map_err(|error| Error::StepOutputMismatch {
            step: parent.to_owned(),
            worker: self.parents[at].1.to_string(),
            reason: error.to_string(),
        })
    }

    /// The step's run starts executing.
    pub(crate) fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
        self.starts.notify_waiters();
    }

    pub(crate) fn has_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Resolves once the step's run has started executing.
    pub(crate) async fn started(&self) {
        loop {
            let notified = self.starts.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.started.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_parents_output_reads_typed_and_every_mistake_names_the_step() {
        let step = StepOf::new(
            WorkflowId::random(),
            "welcome",
            [
                ("avatar".to_owned(), "resize-image".to_owned()),
                ("page".to_owned(), "render-page".to_owned()),
            ],
        );
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
}
