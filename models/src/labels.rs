//! Label schemes: how a dataset's raw label (`neptune`, `DoS Hulk`,
//! `Web Attack – XSS`) becomes a model class.
//!
//! Two schemes exist because two audiences exist. The *binary* scheme
//! (benign / attack) is what the published NSL-KDD figures are measured on, so
//! it is the scheme the accuracy bars speak about. The *family* scheme is what
//! a SIEM analyst wants to read in `rule.name` (`DoS`, `PortScan`, ...), and a
//! family model can always be collapsed to binary (a family is either benign or
//! an attack), so nothing is lost by training on families.
//!
//! Raw labels are normalised before lookup ([`normalize`]) so that the
//! spellings found in users' originals map to the same family: en/em dashes
//! and the Windows-1252 dash that decodes to U+FFFD become `-`, case is folded
//! (`Sql Injection` vs `SQL Injection`), whitespace is collapsed, and the
//! trailing `.` of KDD'99-style labels is dropped.
//!
//! Unknown attack names are never dropped: they map to
//! [`Family::UnknownAttack`] and are counted by [`LabelMapper`], which logs one
//! `tracing` warning per distinct unknown name.
//!
//! Choice documented here: the improved CIC-IDS2017 label
//! `Infiltration - Portscan` maps to [`Family::PortScan`]. Those flows are a
//! port scan launched *from* the infiltrated host; flow-feature-wise they are a
//! port scan, and the flows of the infiltration itself keep the
//! `Infiltration` label. Putting 5,000 scan flows into `Infiltration` would
//! make that family mean "port scan from inside" and hide the 36 real
//! infiltration flows.

use std::collections::BTreeMap;
use std::fmt;

use ids_schemas::flow::SourceDataset;
use serde::{Deserialize, Serialize};

/// Which classes a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LabelScheme {
    /// Two classes: `benign` and `attack`.
    Binary,
    /// Attack families (NSL-KDD or CIC-IDS2017 families, see [`Family`]).
    #[default]
    Family,
}

impl LabelScheme {
    /// Name used on the CLI and in artifacts.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelScheme::Binary => "binary",
            LabelScheme::Family => "family",
        }
    }
}

impl fmt::Display for LabelScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for LabelScheme {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "binary" => Ok(LabelScheme::Binary),
            "family" => Ok(LabelScheme::Family),
            other => Err(format!(
                "unknown label scheme {other:?} (expected binary or family)"
            )),
        }
    }
}

/// Binary class name for benign traffic.
pub const BINARY_BENIGN: &str = "benign";
/// Binary class name for attacks.
pub const BINARY_ATTACK: &str = "attack";

/// Attack families of both datasets, plus the generic unknown class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// NSL-KDD benign traffic (`normal`).
    Normal,
    /// CIC-IDS2017 benign traffic (`BENIGN`).
    Benign,
    /// Denial of service (both datasets; CIC includes DDoS and Heartbleed).
    DoS,
    /// NSL-KDD probing (scans, sweeps).
    Probe,
    /// NSL-KDD remote-to-local.
    R2L,
    /// NSL-KDD user-to-root.
    U2R,
    /// CIC-IDS2017 port scans (including `Infiltration - Portscan`, see module docs).
    PortScan,
    /// CIC-IDS2017 web attacks (brute force, XSS, SQL injection).
    WebAttack,
    /// CIC-IDS2017 FTP/SSH password brute forcing (Patator).
    BruteForce,
    /// CIC-IDS2017 botnet (Ares).
    Bot,
    /// CIC-IDS2017 infiltration.
    Infiltration,
    /// An attack name this crate does not know.
    UnknownAttack,
}

impl Family {
    /// Class name as used in artifacts and alerts (`rule.name`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Normal => "normal",
            Family::Benign => "BENIGN",
            Family::DoS => "DoS",
            Family::Probe => "Probe",
            Family::R2L => "R2L",
            Family::U2R => "U2R",
            Family::PortScan => "PortScan",
            Family::WebAttack => "WebAttack",
            Family::BruteForce => "BruteForce",
            Family::Bot => "Bot",
            Family::Infiltration => "Infiltration",
            Family::UnknownAttack => "UnknownAttack",
        }
    }

    /// Whether this family is benign traffic.
    pub fn is_benign(self) -> bool {
        matches!(self, Family::Normal | Family::Benign)
    }

    /// Canonical class order for a dataset family. Models list their classes in
    /// this order (restricted to the classes present in the training data) so
    /// that class indices are stable across retrainings.
    pub fn canonical_order(nsl_kdd: bool) -> &'static [Family] {
        if nsl_kdd {
            &[
                Family::Normal,
                Family::DoS,
                Family::Probe,
                Family::R2L,
                Family::U2R,
                Family::UnknownAttack,
            ]
        } else {
            &[
                Family::Benign,
                Family::DoS,
                Family::PortScan,
                Family::WebAttack,
                Family::BruteForce,
                Family::Bot,
                Family::Infiltration,
                Family::UnknownAttack,
            ]
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Normalises a raw label for lookup: see the module docs.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut last_space = true;
    for ch in raw.trim().chars() {
        let ch = match ch {
            '\u{2013}' | '\u{2014}' | '\u{2012}' | '\u{2212}' | '\u{FFFD}' | '\u{96}' => '-',
            c => c,
        };
        if ch.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
            continue;
        }
        last_space = false;
        out.extend(ch.to_lowercase());
    }
    while out.ends_with(' ') || out.ends_with('.') {
        out.pop();
    }
    out
}

/// Family of an NSL-KDD attack name (mapping from the datasets README), or
/// `None` when the name is unknown.
pub fn nsl_kdd_family(raw: &str) -> Option<Family> {
    let n = normalize(raw);
    let f = match n.as_str() {
        "normal" => Family::Normal,
        "back" | "land" | "neptune" | "pod" | "smurf" | "teardrop" | "apache2" | "mailbomb"
        | "processtable" | "udpstorm" => Family::DoS,
        "ipsweep" | "nmap" | "portsweep" | "satan" | "mscan" | "saint" => Family::Probe,
        "ftp_write" | "guess_passwd" | "imap" | "multihop" | "phf" | "spy" | "warezclient"
        | "warezmaster" | "sendmail" | "named" | "snmpgetattack" | "snmpguess" | "xlock"
        | "xsnoop" | "worm" => Family::R2L,
        "buffer_overflow" | "loadmodule" | "perl" | "rootkit" | "httptunnel" | "ps"
        | "sqlattack" | "xterm" => Family::U2R,
        _ => return None,
    };
    Some(f)
}

/// Family of a CIC-IDS2017 label (original and improved spellings), or `None`
/// when the name is unknown.
pub fn cic_family(raw: &str) -> Option<Family> {
    let n = normalize(raw);
    // Spaces around the dash vary between releases ("Web Attack - XSS",
    // "Web Attack  XSS" after a lossy decode); compare without them.
    let compact: String = n.chars().filter(|c| *c != ' ' && *c != '-').collect();
    let f = match compact.as_str() {
        "benign" => Family::Benign,
        "ddos" | "dosgoldeneye" | "doshulk" | "dosslowloris" | "dosslowhttptest" | "heartbleed" => {
            Family::DoS
        }
        "portscan" | "infiltrationportscan" => Family::PortScan,
        "webattackbruteforce" | "webattackxss" | "webattacksqlinjection" => Family::WebAttack,
        "ftppatator" | "sshpatator" => Family::BruteForce,
        "bot" | "botnet" | "botnetares" => Family::Bot,
        "infiltration" => Family::Infiltration,
        _ => return None,
    };
    Some(f)
}

/// Whether a raw label (of either dataset) denotes benign traffic.
pub fn is_benign_label(raw: &str) -> bool {
    matches!(normalize(raw).as_str(), "normal" | "benign")
}

/// Family of a raw label given the source dataset. Unknown names become
/// [`Family::UnknownAttack`] (benign names are always known).
pub fn family_of(source: SourceDataset, raw: &str) -> Family {
    let found = match source {
        SourceDataset::NslKdd => nsl_kdd_family(raw),
        SourceDataset::CicIds2017
        | SourceDataset::CicIds2017Improved
        | SourceDataset::CicFlowMeter => cic_family(raw),
        // A synthetic record's label is already a class name of some model.
        _ => nsl_kdd_family(raw).or_else(|| cic_family(raw)),
    };
    found.unwrap_or(Family::UnknownAttack)
}

/// Maps raw labels to class names under a scheme, counting and warning about
/// unknown attack names (once per distinct name).
#[derive(Debug, Default)]
pub struct LabelMapper {
    scheme: LabelScheme,
    unknown: BTreeMap<String, u64>,
}

impl LabelMapper {
    pub fn new(scheme: LabelScheme) -> Self {
        Self {
            scheme,
            unknown: BTreeMap::new(),
        }
    }

    pub fn scheme(&self) -> LabelScheme {
        self.scheme
    }

    /// The family of `raw`, recording unknown names.
    pub fn family(&mut self, source: SourceDataset, raw: &str) -> Family {
        let f = family_of(source, raw);
        if f == Family::UnknownAttack {
            let count = self.unknown.entry(raw.trim().to_string()).or_insert(0);
            if *count == 0 {
                tracing::warn!(
                    label = raw.trim(),
                    class = Family::UnknownAttack.name(),
                    "unknown attack label; counted as a generic attack"
                );
            }
            *count += 1;
        }
        f
    }

    /// Class name of `raw` under this mapper's scheme.
    pub fn class_name(&mut self, source: SourceDataset, raw: &str) -> &'static str {
        let f = self.family(source, raw);
        match self.scheme {
            LabelScheme::Family => f.name(),
            LabelScheme::Binary => {
                if f.is_benign() {
                    BINARY_BENIGN
                } else {
                    BINARY_ATTACK
                }
            }
        }
    }

    /// Unknown attack names seen so far, with counts.
    pub fn unknown_labels(&self) -> &BTreeMap<String, u64> {
        &self.unknown
    }

    /// Total number of rows with an unknown attack name.
    pub fn unknown_count(&self) -> u64 {
        self.unknown.values().sum()
    }
}

/// Whether a class name (of any scheme) denotes benign traffic.
pub fn is_benign_class(name: &str) -> bool {
    name == BINARY_BENIGN || name == Family::Normal.name() || name == Family::Benign.name()
}

/// Canonical ordered class list for a scheme and dataset family.
pub fn canonical_classes(scheme: LabelScheme, nsl_kdd: bool) -> Vec<&'static str> {
    match scheme {
        LabelScheme::Binary => vec![BINARY_BENIGN, BINARY_ATTACK],
        LabelScheme::Family => Family::canonical_order(nsl_kdd)
            .iter()
            .map(|f| f.name())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_dashes_case_and_spaces() {
        assert_eq!(normalize("  Web Attack – XSS "), "web attack - xss");
        assert_eq!(
            normalize("Web Attack \u{FFFD} Sql Injection"),
            "web attack - sql injection"
        );
        assert_eq!(normalize("smurf."), "smurf");
    }

    #[test]
    fn nsl_kdd_families_follow_readme() {
        assert_eq!(nsl_kdd_family("normal"), Some(Family::Normal));
        assert_eq!(nsl_kdd_family("neptune"), Some(Family::DoS));
        assert_eq!(nsl_kdd_family("mscan"), Some(Family::Probe));
        assert_eq!(nsl_kdd_family("snmpguess"), Some(Family::R2L));
        assert_eq!(nsl_kdd_family("httptunnel"), Some(Family::U2R));
        assert_eq!(nsl_kdd_family("teleport"), None);
    }

    #[test]
    fn cic_families_absorb_spellings() {
        for (raw, fam) in [
            ("BENIGN", Family::Benign),
            ("DDoS", Family::DoS),
            ("DoS Hulk", Family::DoS),
            ("DoS slowloris", Family::DoS),
            ("DoS Slowhttptest", Family::DoS),
            ("Heartbleed", Family::DoS),
            ("PortScan", Family::PortScan),
            ("Portscan", Family::PortScan),
            ("Infiltration - Portscan", Family::PortScan),
            ("Infiltration", Family::Infiltration),
            ("Web Attack – Brute Force", Family::WebAttack),
            ("Web Attack - XSS", Family::WebAttack),
            ("Web Attack – Sql Injection", Family::WebAttack),
            ("Web Attack - SQL Injection", Family::WebAttack),
            ("Web Attack \u{FFFD} XSS", Family::WebAttack),
            ("FTP-Patator", Family::BruteForce),
            ("SSH-Patator", Family::BruteForce),
            ("Bot", Family::Bot),
            ("Botnet", Family::Bot),
        ] {
            assert_eq!(cic_family(raw), Some(fam), "{raw}");
        }
        assert_eq!(cic_family("Zero Day"), None);
    }

    #[test]
    fn unknown_labels_are_counted_never_dropped() {
        let mut m = LabelMapper::new(LabelScheme::Family);
        assert_eq!(
            m.class_name(SourceDataset::NslKdd, "teleport"),
            "UnknownAttack"
        );
        assert_eq!(
            m.class_name(SourceDataset::NslKdd, "teleport"),
            "UnknownAttack"
        );
        assert_eq!(m.class_name(SourceDataset::NslKdd, "normal"), "normal");
        assert_eq!(m.unknown_count(), 2);
        assert_eq!(m.unknown_labels().get("teleport"), Some(&2));

        let mut b = LabelMapper::new(LabelScheme::Binary);
        assert_eq!(
            b.class_name(SourceDataset::CicIds2017, "Zero Day"),
            "attack"
        );
        assert_eq!(b.class_name(SourceDataset::CicIds2017, "BENIGN"), "benign");
        assert_eq!(b.unknown_count(), 1);
    }

    #[test]
    fn benign_classes() {
        assert!(is_benign_class("benign"));
        assert!(is_benign_class("normal"));
        assert!(is_benign_class("BENIGN"));
        assert!(!is_benign_class("DoS"));
        assert!(is_benign_label(" BENIGN "));
    }
}
