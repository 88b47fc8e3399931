//! The server's periodic work, stoppable. At a stop a task that writes what requests noted
//! finishes the round it is in (what it took is not lost) and ends; one that only reads or
//! tidies up is cut at once (its next round would do the same), so that a long round
//! (the audit heads of many organizations) does not hold the stop.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The periodic tasks of one server.
pub(crate) struct Background {
    stop: watch::Sender<bool>,
    /// Each task, and whether a stop cuts it.
    tasks: Vec<(JoinHandle<()>, Round)>,
}

/// What a stop does to a task's round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Round {
    /// Finished: the round writes what requests noted, taken out of memory.
    Finish,
    /// Cut: the round only reads or tidies up.
    Cut,
}

impl Background {
    pub(crate) fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Runs `work` every `period` until the stop: the first round at once, or after one
    /// period with `wait_first`.
    pub(crate) fn every<F, Fut>(
        &mut self,
        period: Duration,
        wait_first: bool,
        round: Round,
        mut work: F,
    ) where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            if wait_first {
                tick.tick().await;
            }
            loop {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    _ = tick.tick() => work().await,
                }
            }
        });
        self.tasks.push((task, round));
    }

    /// Runs `work`, which runs until it is dropped, until the stop (which cuts it).
    pub(crate) fn run(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        self.tasks.push((tokio::spawn(work), Round::Cut));
    }

    /// Stops every task (a [`Round::Finish`] once its round is done, a [`Round::Cut`] at
    /// once) and waits for them all (a round may hang on an unreachable database: the caller
    /// bounds the wait).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for (task, round) in self.tasks {
            if round == Round::Cut {
                task.abort();
            }
            let _ = task.await;
        }
    }
}
