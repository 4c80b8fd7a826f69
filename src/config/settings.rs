//! Reads typed settings from a parsed TOML table with `TEND_*` environment
//! overrides, collecting every problem instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// A value that can come from the config file or from an environment variable.
pub trait Setting: Sized {
    /// What a valid value looks like, shown in error messages.
    const EXPECTED: &'static str;

    fn from_toml(value: &toml::Value) -> Result<Self, String>;
    fn from_env(text: &str) -> Result<Self, String>;
}

/// Environment variable that overrides the config key at `path`:
/// `ecs_capacity.interval` becomes `TEND_ECS_CAPACITY_INTERVAL`.
pub fn env_name(path: &str) -> String {
    format!("TEND_{}", path.replace('.', "_").to_ascii_uppercase())
}

/// Settings source: the file's table, the process environment and the
/// problems found so far.
pub struct Settings<'a> {
    table: toml::Table,
    file_label: String,
    env: &'a BTreeMap<String, String>,
    known_paths: BTreeSet<String>,
    errors: Vec<String>,
}

impl<'a> Settings<'a> {
    pub fn new(table: toml::Table, file_label: String, env: &'a BTreeMap<String, String>) -> Self {
        Self {
            table,
            file_label,
            env,
            known_paths: BTreeSet::new(),
            errors: Vec::new(),
        }
    }

    /// Reads `path`, falling back to `default` when neither the environment
    /// nor the file sets it.
    pub fn value<T: Setting>(&mut self, path: &str, default: T) -> T {
        self.optional(path).unwrap_or(default)
    }

    /// Reads `path`; `None` when it is not set anywhere or is invalid (the
    /// problem is recorded).
    pub fn optional<T: Setting>(&mut self, path: &str) -> Option<T> {
        self.known_paths.insert(path.to_owned());
        let variable = env_name(path);
        if let Some(text) = self.env.get(&variable) {
            return match T::from_env(text) {
                Ok(value) => Some(value),
                Err(reason) => {
                    self.errors.push(format!(
                        "{variable}={text:?} is invalid: {reason}; expected {}",
                        T::EXPECTED
                    ));
                    None
                }
            };
        }
        let value = lookup(&self.table, path)?;
        match T::from_toml(value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                let label = &self.file_label;
                self.errors.push(format!(
                    "{path} = {value} in {label} is invalid: {reason}; expected {}",
                    T::EXPECTED
                ));
                None
            }
        }
    }

    /// Records a problem found while validating values that parsed.
    pub fn invalid(&mut self, path: &str, message: impl std::fmt::Display) {
        let variable = env_name(path);
        self.errors
            .push(format!("{path} (or {variable}) {message}"));
    }

    /// Returns every problem, including unknown keys in the file and unknown
    /// `TEND_*` variables, which are usually typos.
    pub fn finish(mut self, allowed_variables: &[&str]) -> Vec<String> {
        let mut unknown = Vec::new();
        collect_unknown(&self.table, "", &self.known_paths, &mut unknown);
        for path in unknown {
            let label = &self.file_label;
            self.errors.push(format!(
                "unknown key {path} in {label}; remove it or check its spelling against the README"
            ));
        }
        let known_variables: BTreeSet<String> =
            self.known_paths.iter().map(|p| env_name(p)).collect();
        for variable in self.env.keys().filter(|name| name.starts_with("TEND_")) {
            if !known_variables.contains(variable)
                && !allowed_variables.contains(&variable.as_str())
            {
                self.errors.push(format!(
                    "unknown environment variable {variable}; unset it or check its spelling against the README"
                ));
            }
        }
        self.errors
    }
}

fn lookup<'t>(table: &'t toml::Table, path: &str) -> Option<&'t toml::Value> {
    let mut parts = path.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn collect_unknown(
    table: &toml::Table,
    prefix: &str,
    known: &BTreeSet<String>,
    out: &mut Vec<String>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if known.contains(&path) {
            continue;
        }
        let is_section = known.iter().any(|k| k.starts_with(&format!("{path}.")));
        match value.as_table() {
            Some(inner) if is_section => collect_unknown(inner, &path, known, out),
            _ => out.push(path),
        }
    }
}

impl Setting for bool {
    const EXPECTED: &'static str = "true or false";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        value.as_bool().ok_or_else(|| "not a boolean".to_owned())
    }

    fn from_env(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err("not a boolean".to_owned()),
        }
    }
}

impl Setting for u64 {
    const EXPECTED: &'static str = "a whole number, 0 or more";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        let number = value
            .as_integer()
            .ok_or_else(|| "not an integer".to_owned())?;
        u64::try_from(number).map_err(|_| "negative".to_owned())
    }

    fn from_env(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "not a whole number".to_owned())
    }
}

impl Setting for f64 {
    const EXPECTED: &'static str = "a number";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Float(number) => Ok(*number),
            toml::Value::Integer(number) => Ok(*number as f64),
            _ => Err("not a number".to_owned()),
        }
    }

    fn from_env(text: &str) -> Result<Self, String> {
        text.trim().parse().map_err(|_| "not a number".to_owned())
    }
}

impl Setting for String {
    const EXPECTED: &'static str = "a string";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "not a string".to_owned())
    }

    fn from_env(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl Setting for super::Secret {
    const EXPECTED: &'static str = "a string";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        value
            .as_str()
            .map(Self::new)
            .ok_or_else(|| "not a string".to_owned())
    }

    fn from_env(text: &str) -> Result<Self, String> {
        Ok(Self::new(text))
    }
}

impl Setting for Duration {
    const EXPECTED: &'static str = "a duration with a unit, such as \"500ms\", \"30s\" or \"5m\"";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        let text = value.as_str().ok_or_else(|| "not a string".to_owned())?;
        Self::from_env(text)
    }

    fn from_env(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim()).map_err(|_| "not a duration".to_owned())
    }
}

impl Setting for SocketAddr {
    const EXPECTED: &'static str = "an address and port, such as \"0.0.0.0:9464\"";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        let text = value.as_str().ok_or_else(|| "not a string".to_owned())?;
        Self::from_env(text)
    }

    fn from_env(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| "not an IP address with a port".to_owned())
    }
}

impl Setting for Vec<String> {
    const EXPECTED: &'static str =
        "a list of strings (in the environment: comma-separated, such as \"a,b\")";

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        let items = value.as_array().ok_or_else(|| "not an array".to_owned())?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("{item} is not a string"))
            })
            .collect()
    }

    fn from_env(text: &str) -> Result<Self, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// Formats problems as one indented line each, for the startup report.
pub fn format_problems(problems: &[String]) -> String {
    let mut text = String::new();
    for problem in problems {
        let _ = writeln!(text, "  - {problem}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(file: &str, env: &'a BTreeMap<String, String>) -> Settings<'a> {
        Settings::new(file.parse().expect("valid TOML"), "test.toml".into(), env)
    }

    #[test]
    fn environment_overrides_file() {
        let env = BTreeMap::from([("TEND_A_B".to_owned(), "7".to_owned())]);
        let mut s = settings("[a]\nb = 3\n", &env);
        assert_eq!(s.value("a.b", 1u64), 7);
        assert!(s.finish(&[]).is_empty());
    }

    #[test]
    fn every_invalid_value_reported() {
        let env = BTreeMap::from([("TEND_A_C".to_owned(), "soon".to_owned())]);
        let mut s = settings("[a]\nb = \"x\"\ntypo = 1\n", &env);
        s.value("a.b", 1u64);
        s.value("a.c", Duration::from_secs(1));
        let problems = s.finish(&[]);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("a.b = \"x\""));
        assert!(problems[1].contains("TEND_A_C=\"soon\""));
        assert!(problems[2].contains("unknown key a.typo"));
    }

    #[test]
    fn unknown_variable_reported() {
        let env = BTreeMap::from([("TEND_REDIS_ULR".to_owned(), "x".to_owned())]);
        let mut s = settings("", &env);
        s.optional::<String>("redis.url");
        let problems = s.finish(&[]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("TEND_REDIS_ULR"));
    }

    #[test]
    fn list_from_environment_splits_commas() {
        assert_eq!(Vec::<String>::from_env("a, b,,c").unwrap(), ["a", "b", "c"]);
    }
}
