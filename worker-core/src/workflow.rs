//! A workflow as its caller declares it: named steps, each a call of an
//! ordinary worker, and which steps each one waits for. [`Workflow`] is
//! the builder; [`Workflow::plan`] checks it (names unique, parents known,
//! no cycle, every call valid) into a [`Plan`], which is what runs it in
//! this process or what a backend stores. Nothing about running is here.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::call::{Call, Resolved};
use crate::error::{Error, Result};

/// A DAG of steps: each step is a run of a registered worker that starts
/// once every step it waits for ([`after`](Self::after)) has succeeded.
/// Start it with [`WORKER::start_workflow`](crate::WORKER::start_workflow).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// let manager = WorkerManager::new();
/// manager.register_with("fetch-profile", WorkerOptions::new(), |_ctx| async {
///     Ok(json!({"name": "Ada"}))
/// }).await?;
/// manager.register_with("send-email", WorkerOptions::new(), |ctx| async move {
///     let profile: Value = ctx.parent_output("profile")?;
///     Ok(format!("Hello, {}", profile["name"].as_str().unwrap_or("you")))
/// }).await?;
///
/// let flow = Workflow::new("welcome")
///     .step("profile", "fetch-profile", Call::new().payload(json!({"user": 7})))
///     .step("email", "send-email", Call::new()).after(["profile"]);
/// let flow_handle = manager.start_workflow(flow).await?;
/// flow_handle.await_result().await?;
/// assert_eq!(flow_handle.output::<String>("email").await?, "Hello, Ada");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Workflow does nothing until it is passed to start_workflow"]
pub struct Workflow {
    name: String,
    steps: Vec<Declared>,
    /// A misuse of the builder (`after` before any step): reported when
    /// the workflow starts, so that the builder stays infallible.
    misuse: Option<String>,
}

#[derive(Debug, Clone)]
struct Declared {
    name: String,
    worker: String,
    call: Call,
    after: Vec<String>,
}

impl Workflow {
    /// An empty workflow; `name` is what dashboards and errors call it
    /// (many workflows may share one name, each has its own id).
    pub fn new(name: impl Into<String>) -> Self {
        Workflow {
            name: name.into(),
            steps: Vec::new(),
            misuse: None,
        }
    }

    /// Adds a step named `name` (unique within the workflow): a run of
    /// `worker` with `call`'s payload and options (`timeout`, `delay`,
    /// `at`, `priority`; a step's delay counts from when its parents are
    /// done). The worker's own timeout, retries, limits and messages apply
    /// as to any run.
    pub fn step(mut self, name: impl Into<String>, worker: impl Into<String>, call: Call) -> Self {
        self.steps.push(Declared {
            name: name.into(),
            worker: worker.into(),
            call,
            after: Vec::new(),
        });
        self
    }

    /// The step added just before waits for these steps: it starts once all
    /// of them have succeeded, and reads their outputs with
    /// [`WorkerContext::parent_output`](crate::WorkerContext::parent_output).
    pub fn after<I, S>(mut self, parents: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let parents = parents.into_iter().map(Into::into);
        match self.steps.last_mut() {
            Some(step) => step.after.extend(parents),
            None => {
                let parents: Vec<String> = parents.collect();
                self.misuse.get_or_insert(format!(
                    "workflow '{}': .after({parents:?}) comes before any step; call it right after the .step(...) that waits",
                    self.name
                ));
            }
        }
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the workflow and resolves each step's call with `resolve`
    /// (the worker's defaults; an unknown worker is an error), giving the
    /// plan that runs it. Every error is a validation error naming the
    /// workflow and the step or steps at fault.
    pub(crate) fn plan(self, resolve: impl Fn(&str, Call) -> Result<Resolved>) -> Result<Plan> {
        let Workflow {
            name,
            steps,
            misuse,
        } = self;
        if let Some(misuse) = misuse {
            return Err(Error::validation(misuse));
        }
        if steps.is_empty() {
            return Err(Error::validation(format!(
                "workflow '{name}' has no steps; add them with .step(name, worker, call)"
            )));
        }
        let index = StepIndex::of(&steps);
        for (at, step) in steps.iter().enumerate() {
            if index.get(&step.name) != Some(at) {
                return Err(Error::validation(format!(
                    "workflow '{name}': step '{}' is declared twice; step names must be unique",
                    step.name
                )));
            }
        }
        let mut parents = Vec::with_capacity(steps.len());
        for step in &steps {
            let mut of_step: Vec<usize> = Vec::with_capacity(step.after.len());
            for parent in &step.after {
                let Some(at) = index.get(parent) else {
                    return Err(Error::validation(format!(
                        "workflow '{name}': step '{}' waits for '{parent}', which is not a step of it (its steps: {})",
                        step.name,
                        names(steps.iter().map(|step| step.name.as_str()))
                    )));
                };
                if !of_step.contains(&at) {
                    of_step.push(at);
                }
            }
            parents.push(of_step);
        }
        let children = children_of(&parents);
        if let Some(cycle) = find_cycle(&parents, &children) {
            let path: Vec<&str> = cycle.iter().map(|&at| steps[at].name.as_str()).collect();
            return Err(Error::validation(format!(
                "workflow '{name}' has a cycle: {} (each step waits for the next); no step of it could ever start",
                path.join(" → ")
            )));
        }
        let mut planned = Vec::with_capacity(steps.len());
        for (step, parents) in steps.into_iter().zip(parents) {
            if step.call.get_key().is_some() {
                return Err(Error::validation(format!(
                    "workflow '{name}': step '{}' has a key; a step is always a run of its own, so its call can't have one",
                    step.name
                )));
            }
            let call = resolve(&step.worker, step.call).map_err(|error| match error {
                Error::NotRegistered(worker) => Error::validation(format!(
                    "workflow '{name}': step '{}' runs worker '{worker}', which is not registered",
                    step.name
                )),
                other => {
                    Error::validation(format!("workflow '{name}': step '{}': {other}", step.name))
                }
            })?;
            if call.key.is_some() {
                return Err(Error::validation(format!(
                    "workflow '{name}': step '{}' runs worker '{}', which is `unique`; a step is always a run of its own, so it can't be keyed",
                    step.name, step.worker
                )));
            }
            planned.push(PlannedStep {
                name: step.name,
                worker: step.worker,
                call,
                parents,
            });
        }
        Ok(Plan {
            id: WorkflowId::random(),
            name,
            steps: planned,
            children,
            id_text: OnceLock::new(),
        })
    }
}

/// `'a', 'b', 'c'`.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|name| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The steps' names, for looking a name up: a scan for the few steps
/// most workflows have (no allocation), a map beyond.
enum StepIndex<'a> {
    Few(&'a [Declared]),
    Many(HashMap<&'a str, usize>),
}

impl<'a> StepIndex<'a> {
    fn of(steps: &'a [Declared]) -> Self {
        if steps.len() <= 16 {
            return StepIndex::Few(steps);
        }
        let mut map = HashMap::with_capacity(steps.len());
        for (at, step) in steps.iter().enumerate() {
            map.entry(step.name.as_str()).or_insert(at);
        }
        StepIndex::Many(map)
    }

    /// The first step named `name`.
    fn get(&self, name: &str) -> Option<usize> {
        match self {
            StepIndex::Few(steps) => steps.iter().position(|step| step.name == name),
            StepIndex::Many(map) => map.get(name).copied(),
        }
    }
}

/// For each step, the steps that wait for it.
fn children_of(parents: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut children = vec![Vec::new(); parents.len()];
    for (child, of_child) in parents.iter().enumerate() {
        for &parent in of_child {
            children[parent].push(child);
        }
    }
    children
}

/// A cycle in the "waits for" graph, as the steps along it with the first
/// repeated at the end; `None` if there is none.
fn find_cycle(parents: &[Vec<usize>], children: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Kahn's algorithm peels off every step that doesn't lie on or behind
    // a cycle; any step left has a parent left, so walking parents from it
    // must come round.
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: Vec<usize> = (0..parents.len()).filter(|&at| waiting[at] == 0).collect();
    while let Some(done) = ready.pop() {
        for &child in &children[done] {
            waiting[child] -= 1;
            if waiting[child] == 0 {
                ready.push(child);
            }
        }
    }
    let start = (0..parents.len()).find(|&at| waiting[at] > 0)?;
    let mut seen = vec![None; parents.len()];
    let mut path = Vec::new();
    let mut at = start;
    loop {
        if let Some(from) = seen[at] {
            let mut cycle: Vec<usize> = path[from..].to_vec();
            cycle.push(at);
            return Some(cycle);
        }
        seen[at] = Some(path.len());
        path.push(at);
        at = *parents[at]
            .iter()
            .find(|&&parent| waiting[parent] > 0)
            .expect("a step left by Kahn's algorithm has a parent left");
    }
}

/// A checked workflow: what runs it, in this process or in a backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// Its id, made when it was checked.
    pub id: WorkflowId,
    /// Its name.
    pub name: String,
    /// Its steps, in the order they were declared.
    pub steps: Vec<PlannedStep>,
    /// For each step, the steps that wait for it.
    children: Vec<Vec<usize>>,
    /// `id` as text, made when first asked for.
    id_text: OnceLock<Box<str>>,
}

/// One step of a [`Plan`].
#[derive(Debug, Clone)]
pub struct PlannedStep {
    /// Its name, unique within the workflow.
    pub name: String,
    /// The worker it runs.
    pub worker: String,
    /// Its call, resolved with the worker's defaults; it has no key.
    pub call: Resolved,
    /// The steps it waits for, as indexes into [`Plan::steps`].
    pub parents: Vec<usize>,
}

impl Plan {
    /// A plan as a backend stored it, to follow the workflow from any
    /// process: its id, name and steps (their calls as stored; only the
    /// names, workers and parents matter there).
    pub fn stored(id: WorkflowId, name: String, steps: Vec<PlannedStep>) -> Plan {
        let parents: Vec<Vec<usize>> = steps.iter().map(|step| step.parents.clone()).collect();
        Plan {
            id,
            name,
            steps,
            children: children_of(&parents),
            id_text: OnceLock::new(),
        }
    }

    /// For each step, the steps that wait for it.
    pub fn children(&self) -> &[Vec<usize>] {
        &self.children
    }

    /// Its id as text (the hyphenated UUID).
    pub fn id_text(&self) -> &str {
        self.id_text
            .get_or_init(|| self.id.to_string().into_boxed_str())
    }

    /// The index of the step named `name`.
    pub fn step_index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.name == name)
    }
}

/// A workflow's id: a UUID, the same from its start to its last reader, in
/// every process.
///
/// ```
/// use worker_core::WorkflowId;
///
/// let id: WorkflowId = "0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e".parse().unwrap();
/// assert_eq!(id.to_string(), "0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e");
/// assert!("flow-7".parse::<WorkflowId>().unwrap_err().contains("'flow-7' is not a workflow id"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkflowId(Uuid);

impl WorkflowId {
    /// A new random id.
    pub fn random() -> WorkflowId {
        WorkflowId(Uuid::new_v4())
    }

    /// The id as a UUID.
    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for WorkflowId {
    fn from(uuid: Uuid) -> Self {
        WorkflowId(uuid)
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkflowId({self})")
    }
}

impl FromStr for WorkflowId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Uuid::try_parse(text.trim()).map(WorkflowId).map_err(|_| {
            format!(
                "'{text}' is not a workflow id: workflow ids are UUIDs, as `WorkflowHandle::id` gives them"
            )
        })
    }
}

impl Serialize for WorkflowId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WorkflowId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::WorkerOptions;

    fn known(worker: &str, call: Call) -> Result<Resolved> {
        match worker {
            "w" => call.resolve(worker, &WorkerOptions::new()),
            "unique" => call.resolve(worker, &WorkerOptions::new().unique("id")),
            other => Err(Error::NotRegistered(other.to_owned())),
        }
    }

    fn refused(flow: Workflow) -> String {
        let error = flow.plan(known).unwrap_err();
        assert!(error.is_validation(), "{error}");
        error.to_string()
    }

    #[test]
    fn a_diamond_plans_with_its_parents_and_children() {
        let plan = Workflow::new("diamond")
            .step("a", "w", Call::new())
            .step("b", "w", Call::new())
            .after(["a"])
            .step("c", "w", Call::new())
            .after(["a", "a"])
            .step("d", "w", Call::new())
            .after(["b", "c"])
            .plan(known)
            .unwrap();
        let parents: Vec<&[usize]> = plan.steps.iter().map(|s| s.parents.as_slice()).collect();
        assert_eq!(parents, [&[][..], &[0], &[0], &[1, 2]]);
        assert_eq!(plan.children(), [vec![1, 2], vec![3], vec![3], vec![]]);
        assert_eq!(plan.step_index("c"), Some(2));
    }

    #[test]
    fn a_cycle_is_refused_naming_its_steps_in_order() {
        let message = refused(
            Workflow::new("loop")
                .step("start", "w", Call::new())
                .step("a", "w", Call::new())
                .after(["start", "c"])
                .step("b", "w", Call::new())
                .after(["a"])
                .step("c", "w", Call::new())
                .after(["b"]),
        );
        assert_eq!(
            message,
            "workflow 'loop' has a cycle: a → c → b → a (each step waits for the next); no step of it could ever start"
        );
        let own = refused(
            Workflow::new("self")
                .step("a", "w", Call::new())
                .after(["a"]),
        );
        assert!(own.contains("a → a"), "{own}");
    }

    #[test]
    fn each_mistake_is_refused_naming_the_step() {
        assert_eq!(
            refused(
                Workflow::new("f")
                    .step("a", "w", Call::new())
                    .after(["nope"])
            ),
            "workflow 'f': step 'a' waits for 'nope', which is not a step of it (its steps: 'a')"
        );
        assert_eq!(
            refused(
                Workflow::new("f")
                    .step("a", "w", Call::new())
                    .step("a", "w", Call::new())
            ),
            "workflow 'f': step 'a' is declared twice; step names must be unique"
        );
        assert_eq!(
            refused(Workflow::new("f").step("a", "missing", Call::new())),
            "workflow 'f': step 'a' runs worker 'missing', which is not registered"
        );
        assert_eq!(
            refused(Workflow::new("f")),
            "workflow 'f' has no steps; add them with .step(name, worker, call)"
        );
        assert!(
            refused(Workflow::new("f").after(["a"]).step("a", "w", Call::new()))
                .contains(".after([\"a\"]) comes before any step")
        );
        assert!(refused(Workflow::new("f").step("a", "w", Call::new().key("k"))).contains("key"));
        assert!(
            refused(Workflow::new("f").step(
                "a",
                "unique",
                Call::new().payload(serde_json::json!({"id": 1}))
            ))
            .contains("`unique`")
        );
    }

    #[test]
    fn an_id_reads_back_from_its_text_and_its_json() {
        let id = WorkflowId::random();
        assert_eq!(id.to_string().parse::<WorkflowId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<WorkflowId>(&json).unwrap(), id);
    }
}
