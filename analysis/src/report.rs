//! One-call analysis of the whole comparison (four topologies, base sweep, claims): what the
//! `paths` command prints and what notebooks bind names to.

use serde::Serialize;

pub use crate::analysis::{
    analyze, analyze_many, big_as_string, TopologyAnalysis, HISTOGRAM_DEPTH_LIMIT,
};
use crate::bases::{base_sweep, BaseRow};
use crate::claims::{check_claims, Claim};
use crate::topology::{Pattern, Topology};
use crate::GraphError;

/// What to compute in a [`Report`].
#[derive(Clone, Debug)]
pub struct ReportOptions {
    /// Block depth `N`.
    pub depth: usize,
    /// Base of the sparse pattern.
    pub base: usize,
    /// A user pattern to analyse beside the four standard ones.
    pub custom: Option<Pattern>,
    /// Bases of the sweep.
    pub bases: std::ops::RangeInclusive<usize>,
    /// Compute histograms even above [`HISTOGRAM_DEPTH_LIMIT`].
    pub force_histograms: bool,
}

impl ReportOptions {
    /// Defaults of the `paths` command at a depth: base 2, no custom pattern, bases 2..=16.
    pub fn new(depth: usize) -> Self {
        ReportOptions {
            depth,
            base: 2,
            custom: None,
            bases: 2..=16,
            force_histograms: false,
        }
    }
}

/// The whole comparison; its JSON form is the `paths --format json` contract.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Block depth `N`.
    pub depth: usize,
    /// Base of the sparse pattern.
    pub base: usize,
    /// plain, res, dense, sparse, then custom if given.
    pub topologies: Vec<TopologyAnalysis>,
    /// Every claim with its verdict.
    pub claims: Vec<Claim>,
    /// The base sweep.
    pub bases: Vec<BaseRow>,
}

impl Report {
    /// Compute everything. Topologies are analysed in parallel threads (they are independent).
    pub fn compute(opts: &ReportOptions) -> Result<Report, GraphError> {
        let n = opts.depth;
        let mut patterns = vec![
            Pattern::Plain,
            Pattern::Res,
            Pattern::Dense,
            Pattern::sparse(opts.base)?,
        ];
        if let Some(c) = &opts.custom {
            patterns.push(c.clone());
        }
        let tops: Vec<Topology> = patterns
            .into_iter()
            .map(|p| Topology::new(p, n))
            .collect::<Result<_, _>>()?;
        if opts.bases.is_empty() || *opts.bases.start() < 2 {
            return Err(GraphError::Base(*opts.bases.start()));
        }
        let hist = opts.force_histograms || n <= HISTOGRAM_DEPTH_LIMIT;
        let topologies = analyze_many(&tops, hist);
        let bases = base_sweep(n, opts.bases.clone())?;
        let claims = check_claims(n, opts.base, &topologies, &bases)?;
        Ok(Report {
            depth: n,
            base: opts.base,
            topologies,
            claims,
            bases,
        })
    }

    /// The analysis of the topology called `name`, if present.
    pub fn topology(&self, name: &str) -> Option<&TopologyAnalysis> {
        self.topologies.iter().find(|t| t.name == name)
    }

    /// Whether every claim holds.
    pub fn all_claims_hold(&self) -> bool {
        self.claims.iter().all(|c| c.holds)
    }
}
