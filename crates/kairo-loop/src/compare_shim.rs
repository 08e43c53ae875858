// TEMPORARY compile shim until kairo_monitor::compare lands (branch i15-stats). NOT TO COMMIT.
#![allow(dead_code, unused_variables)]
pub const DEFAULT_RESAMPLES: usize = 2000;
pub enum Scores {
    Probabilities(Vec<f64>),
    Labels(Vec<String>),
    Values(Vec<f64>),
}
#[derive(PartialEq, serde::Serialize)]
pub enum Verdict {
    Better,
    Worse,
    Inconclusive,
}
pub struct Paired<'a> {
    pub metric: &'a str,
    pub truth: &'a [String],
    pub challenger: &'a Scores,
    pub champion: &'a Scores,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
}
#[derive(serde::Serialize)]
pub struct Bootstrap {
    pub challenger: f64,
    pub champion: f64,
    pub difference: f64,
    pub interval: (f64, f64),
    pub rows: usize,
    pub verdict: Verdict,
}
#[derive(serde::Serialize)]
pub struct Mcnemar {
    pub b: u64,
    pub c: u64,
    pub p_value: f64,
    pub verdict: Verdict,
}
#[derive(serde::Serialize)]
pub struct Slice {
    pub key: String,
    pub regressed: bool,
}
pub fn paired_bootstrap(p: &Paired) -> Result<Bootstrap, String> {
    unimplemented!()
}
pub fn mcnemar(truth: &[String], a: &Scores, b: &Scores, confidence: f64) -> Result<Mcnemar, String> {
    unimplemented!()
}
pub fn slices(p: &Paired, keys: &[String]) -> Result<Vec<Slice>, String> {
    unimplemented!()
}
