//! The `FlowRecord` type: one network flow as it travels on the `flows` topic.
//!
//! The struct mirrors `avro/flow_record.avsc` field for field (same names, same
//! order, same types). A test in `codec` checks that the two never drift apart.
//!
//! A flow carries *either* NSL-KDD features (connection records with 41
//! features) *or* CICFlowMeter features (bidirectional flow statistics, as in
//! CIC-IDS2017 and in users' own CICFlowMeter exports), never both in practice,
//! so each feature group is an optional nested record. Identity fields (flow
//! id, time, 5-tuple) are optional because NSL-KDD has none of them.
//!
//! Every feature group also exposes a *feature table* (`NSL_KDD_FEATURES`,
//! `CIC_FEATURES`): the field name, the column names it is known by in the
//! source CSV files, and its Avro type. Loaders use the aliases to map CSV
//! headers; models use the names to describe their input layout; the fast
//! decoder uses the types.

use serde::{Deserialize, Serialize};

/// Where a flow record came from. Stored as an Avro enum; `Unknown` is the
/// enum's default so that a reader on this schema can still read a record
/// written with a newer symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum SourceDataset {
    #[serde(rename = "UNKNOWN")]
    #[default]
    Unknown,
    #[serde(rename = "NSL_KDD")]
    NslKdd,
    /// CIC-IDS2017 in the original "MachineLearningCVE" / "TrafficLabelling" layout.
    #[serde(rename = "CIC_IDS2017")]
    CicIds2017,
    /// The "improved CIC-IDS2017" re-extraction (Engelen et al., 2021).
    #[serde(rename = "CIC_IDS2017_IMPROVED")]
    CicIds2017Improved,
    /// A user's own CICFlowMeter export.
    #[serde(rename = "CICFLOWMETER")]
    CicFlowMeter,
    /// Traffic synthesised from a model's per-class feature statistics (demo only).
    #[serde(rename = "SYNTHETIC")]
    Synthetic,
}

impl SourceDataset {
    /// Avro enum symbols, in schema order.
    pub const SYMBOLS: [&'static str; 6] = [
        "UNKNOWN",
        "NSL_KDD",
        "CIC_IDS2017",
        "CIC_IDS2017_IMPROVED",
        "CICFLOWMETER",
        "SYNTHETIC",
    ];

    /// Position of this value in [`Self::SYMBOLS`] (the Avro enum index).
    pub fn index(self) -> usize {
        match self {
            SourceDataset::Unknown => 0,
            SourceDataset::NslKdd => 1,
            SourceDataset::CicIds2017 => 2,
            SourceDataset::CicIds2017Improved => 3,
            SourceDataset::CicFlowMeter => 4,
            SourceDataset::Synthetic => 5,
        }
    }

    /// Inverse of [`Self::index`]; `None` for an index outside the enum.
    pub fn from_index(i: usize) -> Option<Self> {
        Some(match i {
            0 => SourceDataset::Unknown,
            1 => SourceDataset::NslKdd,
            2 => SourceDataset::CicIds2017,
            3 => SourceDataset::CicIds2017Improved,
            4 => SourceDataset::CicFlowMeter,
            5 => SourceDataset::Synthetic,
            _ => return None,
        })
    }

    /// The Avro symbol, e.g. `"NSL_KDD"`.
    pub fn symbol(self) -> &'static str {
        Self::SYMBOLS[self.index()]
    }
}

/// One network flow. See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FlowRecord {
    /// Flow identifier from the source (CICFlowMeter's `Flow ID`), if any.
    pub flow_id: Option<String>,
    /// Flow start time, microseconds since the Unix epoch (Avro `timestamp-micros`).
    pub event_time: Option<i64>,
    pub src_ip: Option<String>,
    pub src_port: Option<i32>,
    pub dst_ip: Option<String>,
    pub dst_port: Option<i32>,
    /// Transport protocol in ECS `network.transport` spelling: `tcp`, `udp`, `icmp`, ...
    pub transport: Option<String>,
    /// Which dataset or tool produced this record.
    pub source: SourceDataset,
    /// Ground-truth label as spelled in the source (e.g. `neptune`,
    /// `DoS Hulk`), when the source is labelled. Lets a replay be scored.
    pub label: Option<String>,
    pub nsl_kdd: Option<NslKddFeatures>,
    pub cic: Option<CicFeatures>,
}

/// The Avro type of one feature field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureType {
    Int,
    Long,
    Double,
    Boolean,
    /// A categorical value carried as a string (NSL-KDD's protocol/service/flag).
    String,
}

/// One entry of a feature table.
#[derive(Debug, Clone, Copy)]
pub struct FeatureSpec {
    /// Field name in the Avro schema and the Rust struct.
    pub name: &'static str,
    /// Column names this feature is known by in source CSV files, canonical first.
    pub aliases: &'static [&'static str],
    pub ty: FeatureType,
}

/// Generates a feature struct, its feature table, and a numeric accessor.
macro_rules! feature_group {
    (
        $(#[$meta:meta])*
        $name:ident, $table:ident, $count:ident, $prefix:literal {
            $( $field:ident : $rty:ty => $fty:ident [$($alias:literal),+ $(,)?] ),+ $(,)?
        }
        numeric: $numeric:ident
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
        pub struct $name {
            $( pub $field: $rty, )+
        }

        /// Feature table, in Avro field order.
        pub const $table: &[FeatureSpec] = &[
            $( FeatureSpec { name: stringify!($field), aliases: &[$($alias),+], ty: FeatureType::$fty }, )+
        ];

        /// Number of fields in the group.
        pub const $count: usize = [$(stringify!($field)),+].len();

        impl $name {
            /// Value of the field at `index` in the feature table as `f64`.
            /// String (categorical) fields return `None`; so does an index out of range.
            #[inline]
            pub fn $numeric(&self, index: usize) -> Option<f64> {
                let mut i = 0usize;
                $(
                    if i == index {
                        return FeatureValue::as_f64(&self.$field);
                    }
                    i += 1;
                )+
                let _ = i;
                None
            }

            /// Writes every field, in feature-table order, as `f64` into `out`
            /// (which must hold at least the group's field count). String
            /// (categorical) fields are written as NaN: callers encode those
            /// separately. This is the hot-path form: no allocation, no branching
            /// on the index.
            #[inline]
            pub fn write_numeric(&self, out: &mut [f64]) {
                let mut i = 0usize;
                $(
                    out[i] = FeatureValue::as_f64(&self.$field).unwrap_or(f64::NAN);
                    i += 1;
                )+
                let _ = i;
            }

            /// Reads the group's fields from an Avro datum (fast path, see
            /// `codec`), reusing this value's string buffers.
            #[inline]
            pub(crate) fn avro_read(
                &mut self,
                r: &mut crate::codec::wire::Reader<'_>,
            ) -> Result<(), crate::codec::DecodeError> {
                // Work on a local copy of the cursor: it stays in registers
                // across the straight-line field reads.
                let mut rd = *r;
                $(
                    if let Err(f) = crate::codec::wire::AvroField::read_into(&mut self.$field, &mut rd) {
                        return Err(rd.error(f, concat!($prefix, ".", stringify!($field))));
                    }
                )+
                *r = rd;
                Ok(())
            }

            /// Appends the group's fields as an Avro datum (fast path).
            #[inline]
            pub(crate) fn avro_write(&self, out: &mut Vec<u8>) {
                use crate::codec::wire::AvroField;
                let max = 0 $( + AvroField::max_len(&self.$field) )+;
                let start = out.len();
                out.resize(start + max, 0);
                let mut w = crate::codec::wire::SliceWriter::new(&mut out[start..]);
                $( AvroField::write(&self.$field, &mut w); )+
                let written = w.len();
                out.truncate(start + written);
            }

            /// Test support: fills every field from raw 64-bit patterns
            /// (integers truncate, doubles take the bits verbatim so NaN
            /// payloads and infinities occur, strings cycle through `strings`).
            #[cfg(test)]
            pub(crate) fn fill_from_raw(&mut self, raw: &[u64], strings: &[String]) {
                let mut i = 0usize;
                $(
                    crate::flow::test_support::SetRaw::set_raw(
                        &mut self.$field,
                        raw[i % raw.len()],
                        &strings[i % strings.len()],
                    );
                    i += 1;
                )+
                let _ = i;
            }
        }
    };
}

#[cfg(test)]
pub(crate) mod test_support {
    /// Builds a field value from raw bits, for property tests.
    pub(crate) trait SetRaw {
        fn set_raw(&mut self, raw: u64, s: &str);
    }
    impl SetRaw for i32 {
        fn set_raw(&mut self, raw: u64, _: &str) {
            *self = raw as i32;
        }
    }
    impl SetRaw for i64 {
        fn set_raw(&mut self, raw: u64, _: &str) {
            *self = raw as i64;
        }
    }
    impl SetRaw for f64 {
        fn set_raw(&mut self, raw: u64, _: &str) {
            *self = f64::from_bits(raw);
        }
    }
    impl SetRaw for bool {
        fn set_raw(&mut self, raw: u64, _: &str) {
            *self = raw & 1 == 1;
        }
    }
    impl SetRaw for String {
        fn set_raw(&mut self, _: u64, s: &str) {
            *self = s.to_owned();
        }
    }
}

/// Conversion of a typed feature field to the model's numeric view.
trait FeatureValue {
    fn as_f64(&self) -> Option<f64>;
}
impl FeatureValue for i32 {
    #[inline]
    fn as_f64(&self) -> Option<f64> {
        Some(f64::from(*self))
    }
}
impl FeatureValue for i64 {
    #[inline]
    fn as_f64(&self) -> Option<f64> {
        Some(*self as f64)
    }
}
impl FeatureValue for f64 {
    #[inline]
    fn as_f64(&self) -> Option<f64> {
        Some(*self)
    }
}
impl FeatureValue for bool {
    #[inline]
    fn as_f64(&self) -> Option<f64> {
        Some(if *self { 1.0 } else { 0.0 })
    }
}
impl FeatureValue for String {
    #[inline]
    fn as_f64(&self) -> Option<f64> {
        None
    }
}

feature_group! {
    /// The 41 NSL-KDD (KDD Cup 99) connection features, in the dataset's column order.
    NslKddFeatures, NSL_KDD_FEATURES, NSL_KDD_FEATURE_COUNT, "nsl_kdd" {
        duration: i64 => Long ["duration"],
        protocol_type: String => String ["protocol_type"],
        service: String => String ["service"],
        flag: String => String ["flag"],
        src_bytes: i64 => Long ["src_bytes"],
        dst_bytes: i64 => Long ["dst_bytes"],
        land: bool => Boolean ["land"],
        wrong_fragment: i32 => Int ["wrong_fragment"],
        urgent: i32 => Int ["urgent"],
        hot: i32 => Int ["hot"],
        num_failed_logins: i32 => Int ["num_failed_logins"],
        logged_in: bool => Boolean ["logged_in"],
        num_compromised: i32 => Int ["num_compromised"],
        root_shell: i32 => Int ["root_shell"],
        su_attempted: i32 => Int ["su_attempted"],
        num_root: i32 => Int ["num_root"],
        num_file_creations: i32 => Int ["num_file_creations"],
        num_shells: i32 => Int ["num_shells"],
        num_access_files: i32 => Int ["num_access_files"],
        num_outbound_cmds: i32 => Int ["num_outbound_cmds"],
        is_host_login: bool => Boolean ["is_host_login"],
        is_guest_login: bool => Boolean ["is_guest_login"],
        count: i32 => Int ["count"],
        srv_count: i32 => Int ["srv_count"],
        serror_rate: f64 => Double ["serror_rate"],
        srv_serror_rate: f64 => Double ["srv_serror_rate"],
        rerror_rate: f64 => Double ["rerror_rate"],
        srv_rerror_rate: f64 => Double ["srv_rerror_rate"],
        same_srv_rate: f64 => Double ["same_srv_rate"],
        diff_srv_rate: f64 => Double ["diff_srv_rate"],
        srv_diff_host_rate: f64 => Double ["srv_diff_host_rate"],
        dst_host_count: i32 => Int ["dst_host_count"],
        dst_host_srv_count: i32 => Int ["dst_host_srv_count"],
        dst_host_same_srv_rate: f64 => Double ["dst_host_same_srv_rate"],
        dst_host_diff_srv_rate: f64 => Double ["dst_host_diff_srv_rate"],
        dst_host_same_src_port_rate: f64 => Double ["dst_host_same_src_port_rate"],
        dst_host_srv_diff_host_rate: f64 => Double ["dst_host_srv_diff_host_rate"],
        dst_host_serror_rate: f64 => Double ["dst_host_serror_rate"],
        dst_host_srv_serror_rate: f64 => Double ["dst_host_srv_serror_rate"],
        dst_host_rerror_rate: f64 => Double ["dst_host_rerror_rate"],
        dst_host_srv_rerror_rate: f64 => Double ["dst_host_srv_rerror_rate"],
    }
    numeric: numeric
}

impl NslKddFeatures {
    /// The categorical (string) field at `index` in [`NSL_KDD_FEATURES`], if it is one.
    #[inline]
    pub fn categorical(&self, index: usize) -> Option<&str> {
        match index {
            1 => Some(&self.protocol_type),
            2 => Some(&self.service),
            3 => Some(&self.flag),
            _ => None,
        }
    }
}

feature_group! {
    /// The 77 CICFlowMeter flow features of the CIC-IDS2017 "MachineLearningCVE"
    /// layout (destination port first). Names are snake_case versions of the
    /// original column names; the aliases also cover the improved CIC-IDS2017
    /// spellings, so both layouts load into the same struct.
    CicFeatures, CIC_FEATURES, CIC_FEATURE_COUNT, "cic" {
        destination_port: i32 => Int ["Destination Port", "Dst Port"],
        flow_duration: i64 => Long ["Flow Duration"],
        total_fwd_packets: i64 => Long ["Total Fwd Packets", "Total Fwd Packet"],
        total_backward_packets: i64 => Long ["Total Backward Packets", "Total Bwd packets", "Total Bwd Packets"],
        total_length_fwd_packets: i64 => Long ["Total Length of Fwd Packets", "Total Length of Fwd Packet", "TotLen Fwd Pkts"],
        total_length_bwd_packets: i64 => Long ["Total Length of Bwd Packets", "Total Length of Bwd Packet", "TotLen Bwd Pkts"],
        fwd_packet_length_max: i64 => Long ["Fwd Packet Length Max"],
        fwd_packet_length_min: i64 => Long ["Fwd Packet Length Min"],
        fwd_packet_length_mean: f64 => Double ["Fwd Packet Length Mean"],
        fwd_packet_length_std: f64 => Double ["Fwd Packet Length Std"],
        bwd_packet_length_max: i64 => Long ["Bwd Packet Length Max"],
        bwd_packet_length_min: i64 => Long ["Bwd Packet Length Min"],
        bwd_packet_length_mean: f64 => Double ["Bwd Packet Length Mean"],
        bwd_packet_length_std: f64 => Double ["Bwd Packet Length Std"],
        flow_bytes_per_s: f64 => Double ["Flow Bytes/s"],
        flow_packets_per_s: f64 => Double ["Flow Packets/s"],
        flow_iat_mean: f64 => Double ["Flow IAT Mean"],
        flow_iat_std: f64 => Double ["Flow IAT Std"],
        flow_iat_max: f64 => Double ["Flow IAT Max"],
        flow_iat_min: f64 => Double ["Flow IAT Min"],
        fwd_iat_total: f64 => Double ["Fwd IAT Total"],
        fwd_iat_mean: f64 => Double ["Fwd IAT Mean"],
        fwd_iat_std: f64 => Double ["Fwd IAT Std"],
        fwd_iat_max: f64 => Double ["Fwd IAT Max"],
        fwd_iat_min: f64 => Double ["Fwd IAT Min"],
        bwd_iat_total: f64 => Double ["Bwd IAT Total"],
        bwd_iat_mean: f64 => Double ["Bwd IAT Mean"],
        bwd_iat_std: f64 => Double ["Bwd IAT Std"],
        bwd_iat_max: f64 => Double ["Bwd IAT Max"],
        bwd_iat_min: f64 => Double ["Bwd IAT Min"],
        fwd_psh_flags: i64 => Long ["Fwd PSH Flags"],
        bwd_psh_flags: i64 => Long ["Bwd PSH Flags"],
        fwd_urg_flags: i64 => Long ["Fwd URG Flags"],
        bwd_urg_flags: i64 => Long ["Bwd URG Flags"],
        fwd_header_length: i64 => Long ["Fwd Header Length"],
        bwd_header_length: i64 => Long ["Bwd Header Length"],
        fwd_packets_per_s: f64 => Double ["Fwd Packets/s"],
        bwd_packets_per_s: f64 => Double ["Bwd Packets/s"],
        min_packet_length: i64 => Long ["Min Packet Length", "Packet Length Min"],
        max_packet_length: i64 => Long ["Max Packet Length", "Packet Length Max"],
        packet_length_mean: f64 => Double ["Packet Length Mean"],
        packet_length_std: f64 => Double ["Packet Length Std"],
        packet_length_variance: f64 => Double ["Packet Length Variance"],
        fin_flag_count: i64 => Long ["FIN Flag Count"],
        syn_flag_count: i64 => Long ["SYN Flag Count"],
        rst_flag_count: i64 => Long ["RST Flag Count"],
        psh_flag_count: i64 => Long ["PSH Flag Count"],
        ack_flag_count: i64 => Long ["ACK Flag Count"],
        urg_flag_count: i64 => Long ["URG Flag Count"],
        cwr_flag_count: i64 => Long ["CWE Flag Count", "CWR Flag Count"],
        ece_flag_count: i64 => Long ["ECE Flag Count"],
        down_up_ratio: f64 => Double ["Down/Up Ratio"],
        average_packet_size: f64 => Double ["Average Packet Size"],
        avg_fwd_segment_size: f64 => Double ["Avg Fwd Segment Size", "Fwd Segment Size Avg"],
        avg_bwd_segment_size: f64 => Double ["Avg Bwd Segment Size", "Bwd Segment Size Avg"],
        fwd_avg_bytes_per_bulk: f64 => Double ["Fwd Avg Bytes/Bulk", "Fwd Bytes/Bulk Avg"],
        fwd_avg_packets_per_bulk: f64 => Double ["Fwd Avg Packets/Bulk", "Fwd Packet/Bulk Avg"],
        fwd_avg_bulk_rate: f64 => Double ["Fwd Avg Bulk Rate", "Fwd Bulk Rate Avg"],
        bwd_avg_bytes_per_bulk: f64 => Double ["Bwd Avg Bytes/Bulk", "Bwd Bytes/Bulk Avg"],
        bwd_avg_packets_per_bulk: f64 => Double ["Bwd Avg Packets/Bulk", "Bwd Packet/Bulk Avg"],
        bwd_avg_bulk_rate: f64 => Double ["Bwd Avg Bulk Rate", "Bwd Bulk Rate Avg"],
        subflow_fwd_packets: i64 => Long ["Subflow Fwd Packets"],
        subflow_fwd_bytes: i64 => Long ["Subflow Fwd Bytes"],
        subflow_bwd_packets: i64 => Long ["Subflow Bwd Packets"],
        subflow_bwd_bytes: i64 => Long ["Subflow Bwd Bytes"],
        init_win_bytes_forward: i64 => Long ["Init_Win_bytes_forward", "FWD Init Win Bytes", "Init Fwd Win Byts"],
        init_win_bytes_backward: i64 => Long ["Init_Win_bytes_backward", "Bwd Init Win Bytes", "Init Bwd Win Byts"],
        act_data_pkt_fwd: i64 => Long ["act_data_pkt_fwd", "Fwd Act Data Pkts"],
        min_seg_size_forward: i64 => Long ["min_seg_size_forward", "Fwd Seg Size Min"],
        active_mean: f64 => Double ["Active Mean"],
        active_std: f64 => Double ["Active Std"],
        active_max: f64 => Double ["Active Max"],
        active_min: f64 => Double ["Active Min"],
        idle_mean: f64 => Double ["Idle Mean"],
        idle_std: f64 => Double ["Idle Std"],
        idle_max: f64 => Double ["Idle Max"],
        idle_min: f64 => Double ["Idle Min"],
    }
    numeric: numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_expected_sizes() {
        assert_eq!(NSL_KDD_FEATURE_COUNT, 41);
        assert_eq!(NSL_KDD_FEATURES.len(), 41);
        assert_eq!(CIC_FEATURE_COUNT, 77);
        assert_eq!(CIC_FEATURES.len(), 77);
    }

    #[test]
    fn numeric_accessor_follows_table_order() {
        let f = NslKddFeatures {
            duration: 7,
            src_bytes: 11,
            dst_host_srv_rerror_rate: 0.5,
            protocol_type: "tcp".into(),
            ..Default::default()
        };
        assert_eq!(f.numeric(0), Some(7.0));
        assert_eq!(f.numeric(1), None); // protocol_type is categorical
        assert_eq!(f.categorical(1), Some("tcp"));
        assert_eq!(f.numeric(4), Some(11.0));
        assert_eq!(f.numeric(40), Some(0.5));
        assert_eq!(f.numeric(41), None);
        let mut all = [0.0; NSL_KDD_FEATURE_COUNT];
        f.write_numeric(&mut all);
        assert_eq!(all[0], 7.0);
        assert!(all[1].is_nan());
        assert_eq!(all[40], 0.5);

        let c = CicFeatures {
            destination_port: 443,
            idle_min: 2.5,
            ..Default::default()
        };
        assert_eq!(c.numeric(0), Some(443.0));
        assert_eq!(c.numeric(76), Some(2.5));
        assert_eq!(c.numeric(77), None);
    }

    #[test]
    fn source_symbols_round_trip() {
        for (i, s) in SourceDataset::SYMBOLS.iter().enumerate() {
            let d = SourceDataset::from_index(i).expect("in range");
            assert_eq!(d.index(), i);
            assert_eq!(d.symbol(), *s);
        }
        assert_eq!(SourceDataset::from_index(6), None);
    }
}
