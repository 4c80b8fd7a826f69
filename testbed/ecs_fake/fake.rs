//! The whole fake behind the server lock: the ECS state plus the call
//! counts, queued faults, staged RunTask failures and task timing that the
//! admin endpoints read and set.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::events::{self, outbox::Outbox};
use crate::state::State;
use crate::tasks::TaskTiming;

/// A queued error that the next calls of one operation return.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: String,
    pub message: String,
    pub remaining: u32,
}

/// A failure reason, such as `RESOURCE:MEMORY` or `AGENT`, that the next
/// RunTask calls return in `failures` without placing any task.
#[derive(Debug, Clone)]
pub struct StagedFailure {
    pub reason: String,
    pub remaining: u32,
}

/// The state together with the per-operation call counts and queued faults.
#[derive(Debug)]
pub struct Fake {
    pub state: State,
    /// Calls per operation name, failed ones included. Requests for
    /// operations the fake does not implement are not counted.
    pub calls: BTreeMap<String, u64>,
    /// Faults keyed by operation name.
    pub faults: BTreeMap<String, Fault>,
    pub staged_run_task_failure: Option<StagedFailure>,
    /// Timing of tasks placed from now on.
    pub task_timing: TaskTiming,
    /// Event destination, test switches and counters.
    pub outbox: Outbox,
}

impl Fake {
    pub fn new(state: State, task_timing: TaskTiming, outbox: Outbox) -> Self {
        let mut fake = Self {
            state,
            calls: BTreeMap::new(),
            faults: BTreeMap::new(),
            staged_run_task_failure: None,
            task_timing,
            outbox,
        };
        fake.flush_events();
        fake
    }

    /// Empties the state, the call counts, the faults, the staged failures
    /// and the event switches. The task timing, the events queue and the
    /// event counters stay.
    pub fn reset(&mut self) {
        self.state = State::new(&self.state.region, &self.state.account);
        self.calls.clear();
        self.faults.clear();
        self.staged_run_task_failure = None;
        self.outbox.reset_switches();
    }

    /// Moves the events that the current request recorded to the outbox,
    /// then turns recording on or off to match whether a queue is set.
    /// The server calls this at the end of every request, under the lock,
    /// so events leave in the order the changes happened.
    pub fn flush_events(&mut self) {
        for event in self.state.journal.take() {
            let body = events::envelope(&self.state.region, &self.state.account, &event);
            self.outbox.enqueue(event.resource_arn, body);
        }
        self.state.journal.set_enabled(self.outbox.is_enabled());
    }

    /// Consumes one use of the fault queued for `operation`, if any.
    pub fn take_fault(&mut self, operation: &str) -> Option<Fault> {
        let fault = self.faults.get_mut(operation)?;
        fault.remaining -= 1;
        let used = fault.clone();
        if fault.remaining == 0 {
            self.faults.remove(operation);
        }
        Some(used)
    }

    /// Consumes one use of the staged RunTask failure and returns its
    /// reason, if one is staged.
    pub fn take_staged_run_task_failure(&mut self) -> Option<String> {
        let staged = self.staged_run_task_failure.as_mut()?;
        staged.remaining -= 1;
        let reason = staged.reason.clone();
        if staged.remaining == 0 {
            self.staged_run_task_failure = None;
        }
        Some(reason)
    }

    /// Applies the task starts and exits that are due now. Every ECS and
    /// admin request calls this first, so tasks change status without a
    /// background timer.
    pub fn advance_tasks(&mut self) {
        self.state.advance_tasks(SystemTime::now());
    }
}
