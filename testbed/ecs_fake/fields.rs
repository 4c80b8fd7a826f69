//! Typed reading of the keys of one JSON object for the admin endpoints and
//! seed documents, with errors that name the key by its path, such as
//! `clusters[0].instance_groups[1].used_cpu`.

use serde_json::{Map, Value};

use crate::state::InstanceStatus;

/// Keys of one JSON object. Every reader returns `Ok(None)` for an absent
/// key and an error naming the key for a value of the wrong type or range.
pub struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Checks that `value` is an object whose keys are all in `allowed`, so
    /// that a misspelt key cannot silently fall back to its default.
    pub fn new(value: &'a Value, path: &str, allowed: &[&str]) -> Result<Self, String> {
        let Some(map) = value.as_object() else {
            let location = if path.is_empty() { "document" } else { path };
            return Err(format!("{location}: expected a JSON object, found {value}"));
        };
        let fields = Self {
            path: path.to_owned(),
            map,
        };
        if let Some(unknown) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(format!(
                "{}: unknown field, expected one of {}",
                fields.path(unknown),
                allowed.join(", ")
            ));
        }
        Ok(fields)
    }

    /// Returns the path of `key`. An empty `path` is the document root.
    pub fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, String> {
        value.ok_or_else(|| format!("{}: missing required field", self.path(key)))
    }

    pub fn string(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(format!(
                "{}: expected a string, found {other}",
                self.path(key)
            )),
        }
    }

    /// Reads an array. An absent key reads as an empty array.
    pub fn array(&self, key: &str) -> Result<&'a [Value], String> {
        match self.map.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(format!(
                "{}: expected an array, found {other}",
                self.path(key)
            )),
        }
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => Err(format!(
                "{}: expected true or false, found {other}",
                self.path(key)
            )),
        }
    }

    /// Tells whether `key` is present with the value `null`.
    pub fn is_null(&self, key: &str) -> bool {
        matches!(self.map.get(key), Some(Value::Null))
    }

    /// Reads a count: an integer from 0 to `u32::MAX`.
    pub fn count(&self, key: &str) -> Result<Option<u32>, String> {
        let number = self.bounded_integer(key, u64::from(u32::MAX))?;
        Ok(number.map(|n| u32::try_from(n).expect("bounded by u32::MAX")))
    }

    /// Reads a CPU or memory amount: an integer from 0 to `i32::MAX`, the
    /// range of the ECS `integerValue` field.
    pub fn amount(&self, key: &str) -> Result<Option<i32>, String> {
        let number = self.bounded_integer(key, i32::MAX.unsigned_abs().into())?;
        Ok(number.map(|n| i32::try_from(n).expect("bounded by i32::MAX")))
    }

    fn bounded_integer(&self, key: &str, max: u64) -> Result<Option<u64>, String> {
        let Some(value) = self.map.get(key) else {
            return Ok(None);
        };
        match value.as_u64() {
            Some(number) if number <= max => Ok(Some(number)),
            _ => Err(format!(
                "{}: expected an integer from 0 to {max}, found {value}",
                self.path(key)
            )),
        }
    }

    /// Reads a container instance status such as `ACTIVE` or `DRAINING`.
    pub fn status(&self, key: &str) -> Result<Option<InstanceStatus>, String> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        let status = InstanceStatus::parse(text).ok_or_else(|| {
            format!(
                "{}: invalid status {text:?}, expected ACTIVE, DRAINING, REGISTERING, \
                 DEREGISTERING, REGISTRATION_FAILED or INACTIVE",
                self.path(key)
            )
        })?;
        Ok(Some(status))
    }
}
