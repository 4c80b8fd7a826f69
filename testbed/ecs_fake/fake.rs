//! The whole fake behind the server lock: the ECS state plus the call
//! counts and queued faults that the admin endpoints read and set.

use std::collections::BTreeMap;

use crate::state::State;

/// A queued error that the next calls of one operation return.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: String,
    pub message: String,
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
}

impl Fake {
    pub fn new(state: State) -> Self {
        Self {
            state,
            calls: BTreeMap::new(),
            faults: BTreeMap::new(),
        }
    }

    /// Empties the state, the call counts and the faults.
    pub fn reset(&mut self) {
        self.state = State::new(&self.state.region, &self.state.account);
        self.calls.clear();
        self.faults.clear();
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
}
