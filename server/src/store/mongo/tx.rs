//! Transactions: one helper for every multi-document write.

use super::codec::transient;
use super::prelude::*;

pub(super) fn unconfirmed(deadline: std::time::Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "MongoDB did not confirm the answer within {} s",
        deadline.as_secs()
    ))
}

/// Waits before attempt `attempt + 1`, with jitter, so conflicting
/// transactions stop colliding.
pub(crate) async fn backoff(attempt: usize) {
    let ms = rand::random_range(1..=4 * attempt as u64);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

/// Runs `$body` — an expression using `$s: &mut ClientSession` — in one
/// transaction on `$store`: commits when it succeeds, aborts when it fails,
/// and runs it again, whole, with jittered backoff, when the failure is
/// transient (a write conflict with another transaction, a commit whose
/// result is unknown), at most the store's `limits.attempts` times and not
/// past `$deadline`. Evaluates to the body's `Result<_, StoreError>`. The body may
/// run more than once, so it must only read and write through the session.
/// (A macro rather than a function taking a closure: the body borrows the
/// caller's data and the session for the same attempt, which async closures
/// cannot yet express with `Send` futures.)
macro_rules! transaction {
    ($store:expr, $deadline:expr, |$s:ident| $body:expr) => {{
        let store: &$crate::store::mongo::MongoStore = $store;
        let until = tokio::time::Instant::now() + $deadline;
        let mut attempt = 0usize;
        loop {
            attempt += 1;
            let mut session = match store.session().await {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
            if let Err(e) = session.start_transaction().await {
                break Err($crate::store::StoreError::from(e));
            }
            let result: Result<_, $crate::store::StoreError> = {
                let $s: &mut mongodb::ClientSession = &mut session;
                async { $body }.await
            };
            let result = match result {
                Ok(v) => session
                    .commit_transaction()
                    .await
                    .map(|()| v)
                    .map_err($crate::store::StoreError::from),
                Err(e) => {
                    let _ = session.abort_transaction().await;
                    Err(e)
                }
            };
            match result {
                Err(e)
                    if $crate::store::mongo::tx::transient_error(&e)
                        && attempt < store.limits.attempts
                        && tokio::time::Instant::now() < until =>
                {
                    $crate::store::mongo::tx::backoff(attempt).await
                }
                other => break other,
            }
        }
    }};
}
pub(super) use transaction;

/// Whether a failed transaction is worth running again whole.
pub(crate) fn transient_error(e: &StoreError) -> bool {
    transient(e)
}
