//! Running a room so that its end is always heard of: a room task that
//! panics would otherwise vanish silently, and the host would go on renewing
//! its lease, so that nobody ever took the room over.

use std::future::Future;
use std::pin::Pin;

use snakepit_bus::panic_message::panic_message;

/// A supervised task panicked (or was cancelled by the runtime).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Panicked {
    pub message: String,
}

/// A worker-wide task its rooms need while they run (the publisher, the
/// snapshot writer), supervised, by name: it resolves only if the task
/// ends, which it does not while anyone can hand it work, so its end is a
/// failure of the worker (see `Host::run`).
pub type Helper = Pin<Box<dyn Future<Output = (&'static str, Result<(), Panicked>)> + Send>>;

/// Starts `task` as the [`Helper`] `name`.
pub fn helper(name: &'static str, task: impl Future<Output = ()> + Send + 'static) -> Helper {
    let ended = supervise(task);
    Box::pin(async move { (name, ended.await) })
}

/// Runs `task` in its own task, started at once, and returns its output,
/// or the panic that ended it. Not an `async fn`: that would keep `task`
/// (a room's whole future, kilobytes) in the waiting future as well, for
/// the task's whole life.
pub fn supervise<T: Send + 'static>(
    task: impl Future<Output = T> + Send + 'static,
) -> impl Future<Output = Result<T, Panicked>> + Send {
    let handle = tokio::spawn(task);
    async move {
        handle.await.map_err(|e| {
            let message = if e.is_panic() { panic_message(e.into_panic().as_ref()) } else { "cancelled".to_owned() };
            Panicked { message }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_the_output_or_the_panic() {
        assert_eq!(supervise(async { 7 }).await, Ok(7));
        let panicked = supervise(async {
            let cells: Vec<u8> = Vec::new();
            cells[3]
        })
        .await;
        let message = panicked.expect_err("the panic is reported").message;
        assert!(message.contains("index out of bounds"), "{message}");
        let formatted: Result<(), _> = supervise(async { panic!("room {} broke", 3) }).await;
        assert_eq!(formatted, Err(Panicked { message: "room 3 broke".into() }));
    }
}
