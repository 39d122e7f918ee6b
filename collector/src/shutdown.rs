//! Shutdown in stages: each stage of the collector (receivers, pipeline, writers, background
//! jobs) is a [`Stage`], a set of tasks with one cancellation token. Stopping a stage cancels its
//! token and waits for its tasks, up to a deadline; the next stage stops only after that, so the
//! receivers close first, the pipeline drains into the writers, and the writers flush last.
//! Each task reacts to the token itself and ends once what it holds is safe; nothing is aborted.
//! A task still running at the deadline is logged and left to finish until the process exits.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// What a task reports when it ends: `Err` with a message when it failed.
pub(crate) type TaskResult = Result<(), String>;

/// One stage's tasks and the token that stops them.
#[derive(Debug)]
pub(crate) struct Stage {
    name: &'static str,
    stop: CancellationToken,
    tasks: JoinSet<(&'static str, TaskResult)>,
}

impl Stage {
    /// An empty stage.
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            stop: CancellationToken::new(),
            tasks: JoinSet::new(),
        }
    }

    /// The token the stage's tasks watch.
    pub(crate) fn token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `task`, named `name`, as part of the stage.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = TaskResult> + Send + 'static,
    ) {
        self.tasks.spawn(async move { (name, task.await) });
    }

    /// Runs `task`, which cannot fail, as part of the stage.
    pub(crate) fn spawn_job(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.spawn(name, async move {
            task.await;
            Ok(())
        });
    }

    /// Resolves when one of the stage's tasks ends on its own (before [`Stage::stop`]), with its
    /// name and result; never, if the stage has no task.
    pub(crate) async fn first_exit(&mut self) -> (&'static str, TaskResult) {
        match self.tasks.join_next().await {
            Some(Ok(ended)) => ended,
            Some(Err(e)) => ("task", Err(e.to_string())),
            None => std::future::pending().await,
        }
    }

    /// Cancels the stage's token and waits for its tasks, up to `deadline`.
    pub(crate) async fn stop(mut self, deadline: Duration) {
        self.stop.cancel();
        let all = async {
            while let Some(ended) = self.tasks.join_next().await {
                match ended {
                    Ok((_, Ok(()))) => {}
                    Ok((task, Err(e))) => {
                        tracing::error!(stage = self.name, task, error = %e, "stopped with an error")
                    }
                    Err(e) => tracing::error!(stage = self.name, error = %e, "task failed"),
                }
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!(
                stage = self.name,
                tasks = self.tasks.len(),
                "did not stop in time; left to finish until the process exits"
            );
            self.tasks.detach_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_stage_stops_its_tasks_through_the_token_and_waits_for_them() {
        let mut stage = Stage::new("test");
        let finished = Arc::new(AtomicBool::new(false));
        let (token, done) = (stage.token(), Arc::clone(&finished));
        stage.spawn_job("drains", async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            done.store(true, Ordering::SeqCst);
        });
        stage.stop(Duration::from_secs(10)).await;
        assert!(finished.load(Ordering::SeqCst), "waited for the drain");
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_on_its_own_is_reported() {
        let mut stage = Stage::new("test");
        stage.spawn("server", async { Err("port taken".into()) });
        assert_eq!(
            stage.first_exit().await,
            ("server", Err("port taken".into()))
        );
        let mut stuck = Stage::new("stuck");
        stuck.spawn_job("forever", std::future::pending());
        // Past the deadline it is left running, not aborted; this returns.
        stuck.stop(Duration::from_secs(1)).await;
    }
}
