//! librdkafka client settings: the typed `brokers` option plus a passthrough
//! table for every other librdkafka property (as Vector's Kafka sink does).
//!
//! We keep librdkafka's own names and defaults: the binaries only set the
//! properties they depend on for correctness (`bootstrap.servers`,
//! `enable.idempotence`, `group.id`, ...). Everything else, SASL and TLS
//! included, goes through the passthrough table:
//!
//! ```toml
//! brokers = "kafka-1:9093"
//! [kafka]
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "SCRAM-SHA-512"
//! "sasl.password" = "..."
//! ```
//!
//! or in the environment `IDS_KAFKA__SECURITY_PROTOCOL=SASL_SSL`. Because
//! environment variable names cannot hold dots, `_` in a passthrough key is read
//! as `.` (no settable librdkafka property has an underscore in its name), and
//! nested TOML tables (`security.protocol = "SSL"` unquoted) are flattened back
//! to dotted names.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::config::{is_secret_key, ConfigError, REDACTED};

/// The librdkafka property set by the typed `brokers` option.
pub const BOOTSTRAP_SERVERS: &str = "bootstrap.servers";

/// Default for `brokers`.
pub fn default_brokers() -> String {
    "localhost:9092".to_string()
}

/// The `kafka` passthrough table: librdkafka property name -> value.
///
/// `Debug` and `Serialize` redact secret values (see
/// [`crate::config::is_secret_key`]), so the table can be logged and printed by
/// `--print-config` safely. Code that needs the raw values uses [`Self::iter`]
/// or [`Self::get`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, String>);

impl KafkaProperties {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a property (the key is normalised as in the module docs).
    pub fn insert(&mut self, key: impl AsRef<str>, value: impl Into<String>) {
        self.0.insert(normalise_key(key.as_ref()), value.into());
    }

    /// The raw (unredacted) value of a property.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Raw (unredacted) key/value pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl<K: AsRef<str>, V: Into<String>> FromIterator<(K, V)> for KafkaProperties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = KafkaProperties::new();
        for (k, v) in iter {
            p.insert(k, v);
        }
        p
    }
}

/// `security_protocol` -> `security.protocol`.
fn normalise_key(key: &str) -> String {
    key.trim().replace('_', ".")
}

fn redacted_value<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_key(key) {
        REDACTED
    } else {
        value
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, redacted_value(k, v))))
            .finish()
    }
}

impl Serialize for KafkaProperties {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, redacted_value(k, v))?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for KafkaProperties {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = BTreeMap::new();
        d.deserialize_map(FlattenVisitor {
            prefix: String::new(),
            nested: false,
            out: &mut out,
        })?;
        Ok(KafkaProperties(
            out.into_iter().map(|(k, (_, v))| (k, v)).collect(),
        ))
    }
}

/// How a property was spelled, for resolving two spellings of one property
/// after the layers were merged (the merge only unifies identical spellings).
/// The environment can only spell `security.protocol` as `security_protocol`
/// or as nested `security__protocol`; a file usually spells it `"security.protocol"`.
/// The environment outranks the file, so the env-only spellings win.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Spelling {
    /// `"security.protocol"` (a quoted TOML key)
    Dotted,
    /// `security.protocol` as nested tables (unquoted TOML, or `IDS_KAFKA__SECURITY__PROTOCOL`)
    Nested,
    /// `security_protocol` (`IDS_KAFKA__SECURITY_PROTOCOL`)
    Underscored,
}

type Flat = BTreeMap<String, (Spelling, String)>;

/// Visits a (possibly nested) table, writing `prefix.key = scalar` into `out`.
struct FlattenVisitor<'a> {
    prefix: String,
    nested: bool,
    out: &'a mut Flat,
}

impl<'de> Visitor<'de> for FlattenVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of librdkafka properties")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            let spelling = if key.contains('_') {
                Spelling::Underscored
            } else if self.nested {
                Spelling::Nested
            } else {
                Spelling::Dotted
            };
            let full = if self.prefix.is_empty() {
                normalise_key(&key)
            } else {
                format!("{}.{}", self.prefix, normalise_key(&key))
            };
            map.next_value_seed(EntrySeed {
                key: full,
                spelling,
                out: &mut *self.out,
            })?;
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

struct EntrySeed<'a> {
    key: String,
    spelling: Spelling,
    out: &'a mut Flat,
}

impl<'de> de::DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl EntrySeed<'_> {
    fn put<E: de::Error>(self, value: String) -> Result<(), E> {
        match self.out.get(&self.key) {
            Some((existing, _)) if *existing > self.spelling => {}
            Some((existing, _)) if *existing == self.spelling => {
                return Err(E::custom(format_args!(
                    "kafka property `{}` is given twice",
                    self.key
                )));
            }
            _ => {
                self.out.insert(self.key, (self.spelling, value));
            }
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a scalar value for kafka property `{}`", self.key)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.put(v.to_string())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        self.put(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.put(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.put(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.put(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.put(v.to_string())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        FlattenVisitor {
            prefix: self.key,
            nested: true,
            out: self.out,
        }
        .visit_map(map)
    }
}

/// Connection settings shared by producer and processor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub brokers: String,
    /// Passthrough librdkafka properties.
    pub kafka: KafkaProperties,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: default_brokers(),
            kafka: KafkaProperties::default(),
        }
    }
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>, kafka: KafkaProperties) -> Self {
        KafkaSettings {
            brokers: brokers.into(),
            kafka,
        }
    }

    /// Builds a librdkafka client configuration: `bootstrap.servers` from
    /// `brokers`, then the `typed` properties the caller relies on
    /// (e.g. `("enable.idempotence", "true")`), then the passthrough table.
    ///
    /// A key present both in `typed` (or `bootstrap.servers`) and in the
    /// passthrough table is an error: silently letting one win would hide a
    /// misconfiguration (for example a passthrough `enable.idempotence=false`
    /// quietly breaking the delivery guarantee).
    pub fn client_config(&self, typed: &[(&str, String)]) -> Result<ClientConfig, ConfigError> {
        let mut cc = ClientConfig::new();
        let brokers = self.brokers.trim();
        if brokers.is_empty() {
            return Err(ConfigError::Invalid {
                key: "brokers".into(),
                message: "must not be empty".into(),
            });
        }
        if self.kafka.get(BOOTSTRAP_SERVERS).is_some() {
            return Err(ConfigError::DuplicateKafkaKey {
                key: BOOTSTRAP_SERVERS.into(),
                option: "the `brokers` option".into(),
            });
        }
        cc.set(BOOTSTRAP_SERVERS, brokers);
        for (key, value) in typed {
            if self.kafka.get(key).is_some() {
                return Err(ConfigError::DuplicateKafkaKey {
                    key: (*key).to_string(),
                    option: "a typed option of this program (it relies on the value)".into(),
                });
            }
            cc.set(*key, value.as_str());
        }
        for (key, value) in self.kafka.iter() {
            cc.set(key, value);
        }
        Ok(cc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_with_env, to_redacted_json};
    use std::collections::HashMap;
    use std::io::Write;

    #[derive(Debug, Default, Deserialize, Serialize)]
    #[serde(default)]
    struct Cfg {
        brokers: String,
        kafka: KafkaProperties,
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
    fn env_passthrough_maps_underscores_to_dots() {
        let c: Cfg = load_with_env(
            None,
            env(&[
                ("IDS_KAFKA__SECURITY_PROTOCOL", "SASL_SSL"),
                ("IDS_KAFKA__SASL_PASSWORD", "hunter2"),
            ]),
            &[],
        )
        .unwrap();
        assert_eq!(c.kafka.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(c.kafka.get("sasl.password"), Some("hunter2"));
    }

    #[test]
    fn file_passthrough_quoted_and_nested_keys() {
        let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        f.write_all(
            b"[kafka]\n\"sasl.mechanism\" = \"PLAIN\"\nsecurity.protocol = \"SSL\"\n\"linger.ms\" = 5\n",
        )
        .unwrap();
        let c: Cfg = load_with_env(Some(f.path()), env(&[]), &[]).unwrap();
        assert_eq!(c.kafka.get("sasl.mechanism"), Some("PLAIN"));
        assert_eq!(c.kafka.get("security.protocol"), Some("SSL"));
        assert_eq!(c.kafka.get("linger.ms"), Some("5"));
        // env overrides the file for the same property
        let c: Cfg = load_with_env(
            Some(f.path()),
            env(&[("IDS_KAFKA__SECURITY__PROTOCOL", "SASL_SSL")]),
            &[],
        )
        .unwrap();
        assert_eq!(c.kafka.get("security.protocol"), Some("SASL_SSL"));
        // quoted key in the file, single-underscore spelling in the env: env wins
        let c: Cfg = load_with_env(
            Some(f.path()),
            env(&[("IDS_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")]),
            &[],
        )
        .unwrap();
        assert_eq!(c.kafka.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    }

    #[test]
    fn duplicate_typed_and_passthrough_key_is_an_error() {
        let mut kafka = KafkaProperties::new();
        kafka.insert("enable.idempotence", "false");
        let s = KafkaSettings::new("localhost:9092", kafka);
        let err = s
            .client_config(&[("enable.idempotence", "true".into())])
            .unwrap_err();
        assert_eq!(err.key(), Some("enable.idempotence"));
        assert!(err.to_string().contains("enable.idempotence"));

        let mut kafka = KafkaProperties::new();
        kafka.insert("bootstrap_servers", "elsewhere:9092");
        let err = KafkaSettings::new("localhost:9092", kafka)
            .client_config(&[])
            .unwrap_err();
        assert_eq!(err.key(), Some("bootstrap.servers"));
    }

    #[test]
    fn client_config_sets_only_what_is_given() {
        let mut kafka = KafkaProperties::new();
        kafka.insert("security.protocol", "SSL");
        let cc = KafkaSettings::new("a:1,b:2", kafka)
            .client_config(&[("enable.idempotence", "true".into())])
            .unwrap();
        assert_eq!(cc.get("bootstrap.servers"), Some("a:1,b:2"));
        assert_eq!(cc.get("enable.idempotence"), Some("true"));
        assert_eq!(cc.get("security.protocol"), Some("SSL"));
        assert_eq!(cc.get("acks"), None); // librdkafka's default is left alone
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_print_config() {
        let mut kafka = KafkaProperties::new();
        kafka.insert("sasl.password", "hunter2");
        kafka.insert("ssl.key.pem", "-----BEGIN PRIVATE KEY-----");
        kafka.insert("sasl.username", "alice");
        let s = KafkaSettings::new("b:1", kafka);
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(!dbg.contains("BEGIN PRIVATE"), "{dbg}");
        assert!(dbg.contains("alice"));
        let json = to_redacted_json(&s).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains(REDACTED));
        // the raw value is still there for the client
        let cc = s.client_config(&[]).unwrap();
        assert_eq!(cc.get("sasl.password"), Some("hunter2"));
    }
}
