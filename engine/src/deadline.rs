//! The deadline of the request a section call serves.
//!
//! The API sets it once per request, around the whole handler
//! ([`serve_within`]); [`SectionHandle::call`](crate::actor::SectionHandle::call) reads
//! it and sends it with the call, so the actor can refuse a call whose caller can no
//! longer use the answer before the call touches the inventory or the WAL. A
//! task-local rather than a parameter because every call site between the two (each
//! handler, the idempotency layer) would only pass it through.

use std::future::Future;
use std::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as the deadline of the section calls it makes.
pub async fn serve_within<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// The deadline of the request being served, if one was set.
pub fn current() -> Option<Instant> {
    DEADLINE.try_with(|deadline| *deadline).ok()
}

/// `work` under the current deadline, for a task spawned on the request's behalf (a
/// task-local does not follow `tokio::spawn` by itself).
pub fn carried<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let deadline = current();
    async move {
        match deadline {
            Some(deadline) => DEADLINE.scope(deadline, work).await,
            None => work.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_deadline_is_seen_inside_its_scope_only() {
        assert_eq!(current(), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        let seen = serve_within(deadline, async {
            tokio::task::yield_now().await;
            current()
        })
        .await;
        assert_eq!(seen, Some(deadline));
        assert_eq!(current(), None);
        let spawned = serve_within(deadline, async { tokio::spawn(carried(async { current() })).await.unwrap() }).await;
        assert_eq!(spawned, Some(deadline), "a spawned task carries the deadline it was spawned under");
    }
}
