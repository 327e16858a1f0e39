//! Typed call sites: a call that knows its worker's payload and output
//! types, so a wrong payload is a compile error and the output needs no
//! turbofish. `#[worker]` gives each worker a `name::call(..)` that makes
//! one; underneath it is [`WORKER::call_with`] with a [`Call`].

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::call::{Call, Duplicate};
use crate::error::Result;
use crate::global::WORKER;
use crate::handle::WorkerHandle;
use crate::manager::WorkerManager;

/// One call of a worker whose payload type is `P` and whose output type is
/// `O`, with the same options as [`Call`]. Made by the `call` fn that
/// [`#[worker]`](macro@crate::worker) generates (`send_email::call(email)`),
/// and started by awaiting it: the result is a [`TypedHandle<O>`].
///
/// The payload is serialized only when the call is awaited, so a worker
/// whose payload type is only `Deserialize` still compiles; calling it
/// through its typed entry point needs `P: Serialize`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use std::time::Duration;
/// use worker_core::prelude::*;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Email { to: String }
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Receipt { to: String }
///
/// #[worker("send-receipt", timeout = "5s")]
/// async fn send_receipt(_ctx: WorkerContext, email: Email) -> Result<Receipt> {
///     Ok(Receipt { to: email.to })
/// }
///
/// let manager = WorkerManager::new();
/// manager.register_declared()?;
///
/// let handle = send_receipt::call(Email { to: "a@b.c".into() })
///     .key("a@b.c")
///     .priority(5)
///     .timeout(Duration::from_secs(1))
///     .on(&manager) // without it: the global manager, as WORKER::call_with
///     .await?;
/// // The worker's output type: no turbofish.
/// assert_eq!(handle.await_output().await?, Receipt { to: "a@b.c".into() });
/// # Ok(()) }
/// ```
#[must_use = "a TypedCall does nothing until it is awaited"]
pub struct TypedCall<P, O> {
    worker_name: &'static str,
    /// `None` for a worker that takes no payload: its runs get none at all,
    /// as with `Call::new()`, rather than a JSON `null`.
    payload: Option<P>,
    options: Call,
    /// Where the run goes; `None`: the global manager.
    manager: Option<WorkerManager>,
    /// `fn() -> O`: the call only produces an `O` later, it doesn't hold
    /// one, so it is `Send`/`Sync` whatever `O` is.
    output: PhantomData<fn() -> O>,
}

impl<P, O> TypedCall<P, O> {
    /// A call of the worker named `worker_name` with `payload`. `#[worker]`
    /// makes these for you; by hand, nothing checks that `P` and `O` are the
    /// worker's real types (a mismatch fails at run time, as with
    /// [`Call`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register_with("double", WorkerOptions::new(), |ctx| async move {
    ///     Ok(ctx.payload().and_then(Value::as_u64).unwrap_or(0) * 2)
    /// }).await?;
    /// let call: TypedCall<u64, u64> = TypedCall::new("double", 21);
    /// assert_eq!(call.on(&manager).await?.await_output().await?, 42);
    /// # Ok(()) }
    /// ```
    pub fn new(worker_name: &'static str, payload: P) -> Self {
        TypedCall {
            worker_name,
            payload: Some(payload),
            options: Call::new(),
            manager: None,
            output: PhantomData,
        }
    }

    /// The worker's name.
    pub fn worker_name(&self) -> &'static str {
        self.worker_name
    }

    /// Not started before `delay` from now. See [`Call::delay`].
    pub fn delay(self, delay: Duration) -> Self {
        self.with_options(|call| call.delay(delay))
    }

    /// Not started before `at`. See [`Call::at`].
    pub fn at(self, at: SystemTime) -> Self {
        self.with_options(|call| call.at(at))
    }

    /// At most one run of the worker with this key at a time. See
    /// [`Call::key`].
    pub fn key(self, key: impl Into<String>) -> Self {
        self.with_options(|call| call.key(key))
    }

    /// What to do when a run with the key exists. See
    /// [`Call::on_duplicate`].
    pub fn on_duplicate(self, on_duplicate: Duplicate) -> Self {
        self.with_options(|call| call.on_duplicate(on_duplicate))
    }

    /// Higher starts first. See [`Call::priority`].
    pub fn priority(self, priority: i32) -> Self {
        self.with_options(|call| call.priority(priority))
    }

    /// The run's timeout, instead of the worker's. See [`Call::timeout`].
    pub fn timeout(self, timeout: Duration) -> Self {
        self.with_options(|call| call.timeout(timeout))
    }

    /// Sends the call to `manager` instead of the global one: for tests
    /// and libraries that keep their own [`WorkerManager`] (it is cloned,
    /// which shares it).
    pub fn on(mut self, manager: &WorkerManager) -> Self {
        self.manager = Some(manager.clone());
        self
    }

    fn with_options(mut self, set: impl FnOnce(Call) -> Call) -> Self {
        self.options = set(self.options);
        self
    }
}

impl<O> TypedCall<(), O> {
    /// A call of the worker named `worker_name`, which takes no payload:
    /// its run gets none (not a JSON `null`). What `#[worker]` generates
    /// for a worker that takes only the `WorkerContext`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> worker_core::Result<()> {
    /// use worker_core::prelude::*;
    ///
    /// let manager = WorkerManager::new();
    /// manager.register("tick", |ctx| async move {
    ///     assert!(ctx.payload().is_none());
    ///     Ok(())
    /// }).await?;
    /// let call: TypedCall<(), ()> = TypedCall::without_payload("tick");
    /// call.on(&manager).await?.await_output().await?;
    /// # Ok(()) }
    /// ```
    pub fn without_payload(worker_name: &'static str) -> Self {
        TypedCall {
            payload: None,
            ..TypedCall::new(worker_name, ())
        }
    }
}

impl<P: Clone, O> Clone for TypedCall<P, O> {
    fn clone(&self) -> Self {
        TypedCall {
            worker_name: self.worker_name,
            payload: self.payload.clone(),
            options: self.options.clone(),
            manager: self.manager.clone(),
            output: PhantomData,
        }
    }
}

impl<P: fmt::Debug, O> fmt::Debug for TypedCall<P, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedCall")
            .field("worker", &self.worker_name)
            .field("payload", &self.payload)
            .field("options", &self.options)
            .field("output", &std::any::type_name::<O>())
            .finish_non_exhaustive()
    }
}

impl<P: Serialize, O: 'static> IntoFuture for TypedCall<P, O> {
    type Output = Result<TypedHandle<O>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<TypedHandle<O>>> + Send>>;

    /// Serializes the payload now, so that the future holds only JSON and
    /// is `Send` whatever `P` is. A payload that can't be serialized fails
    /// the call, as with [`Call::payload`].
    fn into_future(self) -> Self::IntoFuture {
        let TypedCall {
            worker_name,
            payload,
            options,
            manager,
            output: _,
        } = self;
        let call = match payload {
            Some(payload) => options.payload(payload),
            None => options,
        };
        Box::pin(async move {
            let handle = match manager {
                Some(manager) => manager.call_with(worker_name, call).await?,
                None => WORKER::call_with(worker_name, call).await?,
            };
            Ok(TypedHandle::new(handle))
        })
    }
}

/// A [`WorkerHandle`] that knows its worker's output type `O`, from an
/// awaited [`TypedCall`]: [`await_output`](Self::await_output) reads the
/// output back as an `O`. Everything else is the `WorkerHandle`'s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> worker_core::Result<()> {
/// use worker_core::prelude::*;
///
/// #[worker]
/// async fn count_to_three(ctx: WorkerContext) -> Result<u32> {
///     for i in 1..=3 {
///         ctx.emit(json!(i))?;
///     }
///     Ok(3)
/// }
///
/// let manager = WorkerManager::new();
/// manager.register_declared()?;
/// let mut handle = count_to_three::call().on(&manager).await?;
/// let mut seen = Vec::new();
/// while let Some(message) = handle.recv().await {
///     seen.push(message);
/// }
/// assert_eq!(seen, [json!(1), json!(2), json!(3)]);
/// let last: u32 = handle.await_output().await?;
/// assert_eq!(last, 3);
/// # Ok(()) }
/// ```
pub struct TypedHandle<O> {
    handle: WorkerHandle,
    output: PhantomData<fn() -> O>,
}

impl<O> TypedHandle<O> {
    fn new(handle: WorkerHandle) -> Self {
        TypedHandle {
            handle,
            output: PhantomData,
        }
    }

    /// The run's id. See [`WorkerHandle::id`].
    pub fn id(&self) -> &str {
        self.handle.id()
    }

    /// The worker's name. See [`WorkerHandle::worker_name`].
    pub fn worker_name(&self) -> &str {
        self.handle.worker_name()
    }

    /// The next message the worker emitted. See [`WorkerHandle::recv`].
    pub async fn recv(&mut self) -> Option<Value> {
        self.handle.recv().await
    }

    /// The next message if one is waiting. See [`WorkerHandle::try_recv`].
    pub fn try_recv(&mut self) -> Option<Value> {
        self.handle.try_recv()
    }

    /// Cancels the run and waits until it has ended. See
    /// [`WorkerHandle::cancel`].
    pub async fn cancel(&self) -> Result<()> {
        self.handle.cancel().await
    }

    /// Whether the run has ended. See [`WorkerHandle::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Waits for the run to end; its result without the output. See
    /// [`WorkerHandle::await_result`].
    pub async fn await_result(self) -> Result<()> {
        self.handle.await_result().await
    }

    /// The untyped handle, for code that takes a [`WorkerHandle`].
    pub fn into_inner(self) -> WorkerHandle {
        self.handle
    }
}

impl<O: DeserializeOwned> TypedHandle<O> {
    /// Waits for the run to end and gives the worker's output as its own
    /// type. See [`WorkerHandle::await_output`] for the errors.
    pub async fn await_output(self) -> Result<O> {
        self.handle.await_output::<O>().await
    }
}

impl<O> fmt::Debug for TypedHandle<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedHandle").field(&self.handle).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The typed call is `call_with` with the same options: a key joins,
    /// a delay schedules.
    #[tokio::test]
    async fn options_reach_the_call() {
        let manager = WorkerManager::new();
        manager
            .register("w", |_ctx| async { Ok(()) })
            .await
            .unwrap();
        let first = TypedCall::<_, ()>::new("w", json!({"n": 1}))
            .key("k")
            .delay(Duration::from_millis(20))
            .on(&manager)
            .await
            .unwrap();
        assert_eq!(manager.scheduled(Some("w")).await.unwrap(), [first.id()]);
        let joined = TypedCall::<_, ()>::new("w", json!({"n": 2}))
            .key("k")
            .on(&manager)
            .await
            .unwrap();
        assert_eq!(joined.id(), first.id());
        first.await_result().await.unwrap();
        joined.into_inner().await_result().await.unwrap();
    }

    #[tokio::test]
    async fn an_unserializable_payload_fails_the_call() {
        let manager = WorkerManager::new();
        manager
            .register("w", |_ctx| async { Ok(()) })
            .await
            .unwrap();
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3); // no JSON form
        let error = TypedCall::<_, ()>::new("w", map)
            .on(&manager)
            .await
            .unwrap_err();
        assert!(error.is_validation(), "{error}");
    }

    #[test]
    fn a_typed_call_is_send_whatever_its_output_type() {
        fn send<T: Send>(_: &T) {}
        let call = TypedCall::<u8, std::rc::Rc<u8>>::new("w", 1);
        send(&call);
        send(&call.into_future());
    }
}
