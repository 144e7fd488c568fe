//! Layered configuration shared by every IDS Stream binary.
//!
//! Precedence, lowest first:
//! 1. the serde defaults of the target struct (`#[serde(default)]`),
//! 2. an optional TOML file (`--config FILE` / `IDS_CONFIG`),
//! 3. `IDS_*` environment variables (`IDS_FLOWS_TOPIC`, and `__` for nesting:
//!    `IDS_KAFKA__SECURITY_PROTOCOL` is `kafka.security_protocol`),
//! 4. command-line flags, passed in as `overrides`.
//!
//! A key in the file that the target struct does not know is an error: a typo in
//! a config file must not silently fall back to a default. Unknown `IDS_*`
//! variables are ignored instead, because the environment is shared with other
//! tools (`IDS_DATASETS`, `IDS_CONFIG`).
//!
//! Every error names the offending key, and binaries exit with code 2 on a
//! [`ConfigError`] (see [`ConfigError::EXIT_CODE`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A value given on the command line. Re-exported so that binaries do not need
/// a direct dependency on the `config` crate: `ConfigValue::from(100u64)`.
pub use config::Value as ConfigValue;

/// Prefix of the environment variables read by [`load`].
pub const ENV_PREFIX: &str = "IDS";

/// Why a configuration could not be loaded. Every variant names the key (or file)
/// at fault; none of them ever carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or is not valid TOML.
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    /// The config file sets a key the program does not know.
    #[error("config file {path}: unknown key `{key}`")]
    UnknownKey { path: PathBuf, key: String },
    /// A key has a value of the wrong type or an invalid value.
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// A librdkafka property is set both by a typed option and in the `kafka` passthrough table.
    #[error("kafka property `{key}` is set both by {option} and in the `kafka` passthrough table; remove it from the passthrough table")]
    DuplicateKafkaKey { key: String, option: String },
    /// Any other configuration error.
    #[error("configuration error: {0}")]
    Other(String),
}

impl ConfigError {
    /// Process exit code for an invalid configuration (as `sysexits`' EX_USAGE-ish 2,
    /// the same code clap uses for bad arguments).
    pub const EXIT_CODE: i32 = 2;

    /// The key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::DuplicateKafkaKey { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Loads `T` from the layers described in the module documentation, reading the
/// process environment.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    overrides: &[(&str, ConfigValue)],
) -> Result<T, ConfigError> {
    load_with_env(file, None, overrides)
}

/// As [`load`], but with an explicit environment (`None` = the process
/// environment). Tests use this so they do not race on process-global state.
pub fn load_with_env<T: DeserializeOwned>(
    file: Option<&Path>,
    env: Option<HashMap<String, String>>,
    overrides: &[(&str, ConfigValue)],
) -> Result<T, ConfigError> {
    let mut builder = config::Config::builder();

    // The file layer is also built on its own so that unknown keys can be
    // attributed to it (and not to an unrelated IDS_* variable).
    let mut file_layer: Option<(PathBuf, config::Config)> = None;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let source = config::File::from_str(&text, config::FileFormat::Toml);
        let only_file = config::Config::builder()
            .add_source(source.clone())
            .build()
            .map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        file_layer = Some((path.to_path_buf(), only_file));
        builder = builder.add_source(source);
    }

    let env_source = config::Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .ignore_empty(true)
        .source(env);
    builder = builder.add_source(env_source);

    for (key, value) in overrides {
        builder = builder
            .set_override(*key, value.clone())
            .map_err(|e| ConfigError::Invalid {
                key: (*key).to_string(),
                message: e.to_string(),
            })?;
    }

    let merged = builder
        .build()
        .map_err(|e| ConfigError::Other(e.to_string()))?;

    let mut ignored: Vec<String> = Vec::new();
    let result: Result<T, serde_path_to_error::Error<config::ConfigError>> = {
        let mut on_ignored = |path: serde_ignored::Path<'_>| ignored.push(path.to_string());
        let de = serde_ignored::Deserializer::new(merged, &mut on_ignored);
        serde_path_to_error::deserialize(de)
    };

    // Unknown keys first: a typo is the likeliest cause of a type error too.
    if let Some((path, file_cfg)) = &file_layer {
        for key in &ignored {
            if file_cfg.get::<config::Value>(key).is_ok() {
                return Err(ConfigError::UnknownKey {
                    path: path.clone(),
                    key: key.clone(),
                });
            }
        }
    }

    result.map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let key = match (&inner, key.as_str()) {
            (config::ConfigError::Type { key: Some(k), .. }, "." | "") => k.clone(),
            (_, "." | "") => "<root>".to_string(),
            _ => key,
        };
        ConfigError::Invalid {
            key,
            message: inner.to_string(),
        }
    })
}

/// Names that mark a value as secret, wherever they appear in a key.
const SECRET_MARKERS: &[&str] = &[
    "password",
    "secret",
    "ssl.key.pem",
    "ssl_key",
    "ssl.key",
    "sasl.oauthbearer.config",
    "sasl.jaas.config",
    "token",
    "credential",
];

/// The text that replaces a secret value in Debug output and `--print-config`.
pub const REDACTED: &str = "<redacted>";

/// Whether a configuration key (a librdkafka property or a struct field) holds a
/// secret. Matching is by substring, so `ssl.keystore.password` and
/// `sasl.password` are both secret; erring on the side of redaction is cheap.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SECRET_MARKERS.iter().any(|m| k.contains(m))
}

/// Serialises an effective configuration as pretty JSON with every secret value
/// replaced by [`REDACTED`]: the output of `--print-config`.
pub fn to_redacted_json<T: Serialize>(cfg: &T) -> Result<String, ConfigError> {
    let mut v = serde_json::to_value(cfg).map_err(|e| ConfigError::Other(e.to_string()))?;
    redact_json(&mut v);
    serde_json::to_string_pretty(&v).map_err(|e| ConfigError::Other(e.to_string()))
}

/// Replaces the value of every secret key (see [`is_secret_key`]) in a JSON tree.
pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_secret_key(k) && !val.is_null() {
                    *val = serde_json::Value::String(REDACTED.to_string());
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::io::Write;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(default)]
    struct Cfg {
        brokers: String,
        rate: u64,
        limit: Option<u64>,
        looping: bool,
        nested: Nested,
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    #[serde(default)]
    struct Nested {
        depth: u32,
        name: String,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Cfg {
                brokers: "localhost:9092".into(),
                rate: 0,
                limit: None,
                looping: false,
                nested: Nested::default(),
            }
        }
    }

    impl Default for Nested {
        fn default() -> Self {
            Nested {
                depth: 1,
                name: "n".into(),
            }
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let c: Cfg = load_with_env(None, env(&[]), &[]).unwrap();
        assert_eq!(c, Cfg::default());
    }

    #[test]
    fn layering_precedence_default_file_env_cli() {
        let f = file("brokers = \"file:1\"\nrate = 10\nlimit = 5\n[nested]\ndepth = 3\n");
        let e = env(&[
            ("IDS_RATE", "20"),
            ("IDS_NESTED__NAME", "from-env"),
            ("IDS_DATASETS", "/somewhere"), // unknown env keys are ignored
            ("OTHER_RATE", "99"),
        ]);
        let c: Cfg = load_with_env(Some(f.path()), e.clone(), &[]).unwrap();
        assert_eq!(c.brokers, "file:1"); // file over default
        assert_eq!(c.rate, 20); // env over file
        assert_eq!(c.limit, Some(5));
        assert_eq!(c.nested.depth, 3);
        assert_eq!(c.nested.name, "from-env");
        assert!(!c.looping);

        let c: Cfg = load_with_env(
            Some(f.path()),
            e,
            &[
                ("rate", ConfigValue::from(30u64)),
                ("looping", ConfigValue::from(true)),
            ],
        )
        .unwrap();
        assert_eq!(c.rate, 30); // CLI over env
        assert!(c.looping);
    }

    #[test]
    fn unknown_file_key_is_an_error_naming_it() {
        let f = file("brokers = \"x\"\nraet = 10\n");
        let err = load_with_env::<Cfg>(Some(f.path()), env(&[]), &[]).unwrap_err();
        assert_eq!(err.key(), Some("raet"), "{err}");
        assert!(err.to_string().contains("raet"));

        let f = file("[nested]\ndepht = 10\n");
        let err = load_with_env::<Cfg>(Some(f.path()), env(&[]), &[]).unwrap_err();
        assert_eq!(err.key(), Some("nested.depht"), "{err}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = load_with_env::<Cfg>(None, env(&[("IDS_RATE", "fast")]), &[]).unwrap_err();
        assert_eq!(err.key(), Some("rate"), "{err}");
        let err = load_with_env::<Cfg>(None, env(&[("IDS_NESTED__DEPTH", "-3")]), &[]).unwrap_err();
        assert_eq!(err.key(), Some("nested.depth"), "{err}");
    }

    #[test]
    fn broken_toml_names_the_file() {
        let f = file("brokers = \n");
        let err = load_with_env::<Cfg>(Some(f.path()), env(&[]), &[]).unwrap_err();
        assert!(matches!(err, ConfigError::File { .. }), "{err}");
    }

    #[test]
    fn redaction_of_secret_keys() {
        assert!(is_secret_key("sasl.password"));
        assert!(is_secret_key("ssl.key.password"));
        assert!(is_secret_key("ssl.key.pem"));
        assert!(is_secret_key("ssl_key"));
        assert!(!is_secret_key("security.protocol"));
        assert!(!is_secret_key("sasl.username"));
        let mut v = serde_json::json!({"kafka": {"sasl.password": "hunter2", "sasl.username": "bob"}, "list": [{"ssl.key.password": "k"}]});
        redact_json(&mut v);
        let s = v.to_string();
        assert!(!s.contains("hunter2"));
        assert!(!s.contains("\"k\""));
        assert!(s.contains("bob"));
    }
}
