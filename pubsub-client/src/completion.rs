//! A one-shot result shared by many waiters: the completion of one request that carries many
//! messages (a publish batch, an acknowledge batch).
//!
//! One allocation per request instead of a channel per message. Waiters register a waker slot;
//! [`Completion::complete`] stores the result and wakes them all.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::Result;

enum State<T> {
    Pending(Vec<Option<Waker>>),
    Done(Result<T>),
}

/// Completion cell of one request.
pub(crate) struct Completion<T> {
    state: Mutex<State<T>>,
}

impl<T> std::fmt::Debug for Completion<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Completion")
    }
}

impl<T: Clone> Completion<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Completion { state: Mutex::new(State::Pending(Vec::new())) })
    }

    /// Sets the result (the first call wins) and wakes every waiter.
    pub(crate) fn complete(&self, result: Result<T>) {
        let wakers = {
            let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *st {
                State::Done(_) => return,
                State::Pending(w) => {
                    let w = std::mem::take(w);
                    *st = State::Done(result);
                    w
                }
            }
        };
        for w in wakers.into_iter().flatten() {
            w.wake();
        }
    }

    /// Polls for the result; `slot` remembers this waiter's waker position between polls.
    pub(crate) fn poll_with(&self, slot: &mut Option<usize>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *st {
            State::Done(r) => Poll::Ready(r.clone()),
            State::Pending(wakers) => {
                match slot {
                    Some(i) => match &mut wakers[*i] {
                        Some(w) if w.will_wake(cx.waker()) => {}
                        w => *w = Some(cx.waker().clone()),
                    },
                    None => {
                        *slot = Some(wakers.len());
                        wakers.push(Some(cx.waker().clone()));
                    }
                }
                Poll::Pending
            }
        }
    }

    /// Resolves when the request is done, whatever its result.
    pub(crate) fn done(self: Arc<Self>) -> impl Future<Output = ()> {
        let mut slot = None;
        std::future::poll_fn(move |cx| self.poll_with(&mut slot, cx).map(drop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[tokio::test]
    async fn every_waiter_sees_the_result_and_the_first_completion_wins() {
        let c: Arc<Completion<u32>> = Completion::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move {
                    let mut slot = None;
                    std::future::poll_fn(|cx| c.poll_with(&mut slot, cx)).await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        c.complete(Ok(7));
        c.complete(Err(Error::ShutDown("x")));
        for w in waiters {
            assert_eq!(w.await.expect("join").expect("ok"), 7);
        }
        c.clone().done().await;
    }
}
