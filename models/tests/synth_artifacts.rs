//! The demo relies on synthetic flows from the committed artifacts being
//! classified as the class they were drawn from (see `synth` module docs).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ids_models::artifact::ModelArtifact;
use ids_models::inference::Classifier;
use ids_models::synth::synthesize;
use ids_schemas::flow::SourceDataset;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn synthetic_flows_from_committed_artifacts_match_their_class() {
    for name in ["nsl-kdd.json", "cic-ids2017.json"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("artifacts")
            .join(name);
        let artifact = ModelArtifact::load(&path).expect("committed artifact");
        let classifier = Classifier::new(&artifact);
        let mut rng = StdRng::seed_from_u64(11);
        let mut per_class: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let n = 5000;
        for _ in 0..n {
            let r = synthesize(&artifact, &mut rng);
            assert_eq!(r.source, SourceDataset::Synthetic);
            let label = r.label.clone().expect("labelled");
            let v = classifier.classify(&r).expect("classifiable");
            let e = per_class.entry(label.clone()).or_default();
            e.1 += 1;
            if classifier.class_name(v.class) == label {
                e.0 += 1;
            }
        }
        let agree: u32 = per_class.values().map(|(a, _)| a).sum();
        println!("{name}: {agree}/{n} agree; per class {per_class:?}");
        assert!(agree as f64 >= 0.95 * n as f64, "{name}: {agree}/{n}");
        assert_eq!(
            per_class.len(),
            artifact.classes.len(),
            "{name}: every class drawn"
        );
    }
}
