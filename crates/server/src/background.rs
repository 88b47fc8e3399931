//! The server's periodic work, stoppable: at a stop each task finishes the round it is in
//! (a write under way is not cut) and ends, and the stop waits for them.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The periodic tasks of one server.
pub(crate) struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
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
    pub(crate) fn every<F, Fut>(&mut self, period: Duration, wait_first: bool, mut work: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut stop = self.stop.subscribe();
        self.tasks.push(tokio::spawn(async move {
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
        }));
    }

    /// Stops every task once its round is done, and waits for them all (a round may hang on
    /// an unreachable database: the caller bounds the wait).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
