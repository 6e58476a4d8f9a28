//! A trainable model instantiated from the zoo's network DAG.
//!
//! The model is an interpreter of [`NetGraph`]: it walks the nodes in their (topological)
//! order, creates the parameters each node needs, and runs each node's op. It never
//! re-describes an architecture: whatever `zoo` can build, this can train. [`Model::walk`] and
//! [`Model::pass`] run on any backend; [`Model::step`] and [`Model::logits`] are the CPU's.

use anyhow::{bail, Result};
use ndarray::Array;
use ndarray_rand::rand::SeedableRng;
use ndarray_rand::RandomExt;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Normal, Uniform};

use sparsenet_net::count::node_count;
use sparsenet_net::op::ParamShape;
use sparsenet_net::zoo::{build, NetSpec};
use sparsenet_net::{NetGraph, Op, Shape};

use crate::autodiff::{Input, Tape};
use crate::backend::{Backend, Label};
use crate::cpu::{read, Act, CpuBackend, Elem, Param};
use crate::profile;
use crate::real::{c, Real};

pub use crate::backend::BnStats;

/// One named parameter tensor.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    /// Dotted name, e.g. `block1.layer3.conv.weight`.
    pub name: String,
    /// Logical shape (PyTorch layout).
    pub shape: Vec<usize>,
    /// Node it belongs to.
    pub node: usize,
}

/// The initial values of one parameter tensor, like the reference implementations: He-normal
/// convolution weights (fan-out: std `√(2 / (k²·out))`), batch-norm γ = 1 and β = 0, linear
/// weights uniform in `±1/√fan_in` (PyTorch's default) and bias 0. Random tensors are drawn in
/// their row-major order from `rng`.
fn init_param<E: Real>(op: &Op, p: &ParamShape, rng: &mut ChaCha8Rng) -> Vec<E> {
    let random = match (op, p.name) {
        (Op::Conv { out_ch, kernel, .. }, "weight") => {
            let std = (2.0 / (kernel * kernel * out_ch) as f64).sqrt();
            Some(Array::random_using(
                p.shape.as_slice(),
                Normal::new(0.0, std).expect("positive std"),
                rng,
            ))
        }
        (Op::Linear { in_features, .. }, "weight") => {
            let a = 1.0 / (*in_features as f64).sqrt();
            Some(Array::random_using(
                p.shape.as_slice(),
                Uniform::new(-a, a),
                rng,
            ))
        }
        _ => None,
    };
    match (random, op, p.name) {
        (Some(a), _, _) => a.iter().map(|&v| c::<E>(v)).collect(),
        (None, Op::BatchNorm { .. }, "weight") => vec![E::one(); p.numel()],
        _ => vec![E::zero(); p.numel()],
    }
}

/// A model: the DAG, its parameters (flat vectors, the master copy the optimiser updates) and
/// its batch-norm running statistics.
#[derive(Clone)]
pub struct Model<E: Real> {
    /// The network.
    pub net: NetGraph,
    /// The spec it was built from (input shape set to the data's).
    pub spec: NetSpec,
    /// Parameter names and shapes, in node order.
    pub params: Vec<ParamSpec>,
    /// Parameter values, parallel to `params`.
    pub values: Vec<Vec<E>>,
    /// Running statistics per node (Some for batch-norm nodes).
    pub bn: Vec<Option<BnStats<E>>>,
    /// Parameter indices per node.
    node_params: Vec<Vec<usize>>,
    /// For each node, the last node that reads it (activations are freed after it).
    last_use: Vec<usize>,
    /// For a batch-norm node whose only reader is a ReLU: that ReLU (computed fused with it).
    fused_relu: Vec<Option<usize>>,
    /// Nodes whose output every pass replaces by zeros (test-time lesions; empty normally).
    zeroed: Vec<usize>,
    /// The key the next pass draws its dropout masks from (each layer's mask is a function of
    /// it, the node and the element's position: [`crate::backend::layer_key`]). The training
    /// loop sets it before every step from the run's seed, the epoch and the step, so masks
    /// are the same on any thread count and after a resume.
    pub step_key: u64,
    /// Pruning masks, parallel to `params` (`None`: dense). A weight whose mask is `false` is
    /// zero and stays zero: the optimiser leaves it and its state untouched
    /// ([`crate::optim::update`]); checkpoints keep the masks (`mask.<param>`).
    pub masks: Vec<Option<Vec<bool>>>,
}

impl<E: Real> Model<E> {
    /// Build `spec` for inputs of shape `input` and initialise it ([`init_param`]): every
    /// node's parameters are the ones its op declares ([`Op::params`]), named
    /// `<node>.<param>` in the checkpoint.
    pub fn new(spec: &NetSpec, input: Shape, seed: u64) -> Result<Self> {
        let mut spec = spec.clone();
        spec.input = Some(input);
        let net = build(&spec)?;
        Ok(Self::from_net(spec, net, seed))
    }

    /// [`Model::new`] for a network already built from `spec` (whose input is set).
    pub fn from_net(spec: NetSpec, net: NetGraph, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = net.graph.node_count();
        let mut params = Vec::new();
        let mut values: Vec<Vec<E>> = Vec::new();
        let mut bn = vec![None; n];
        let mut node_params = vec![Vec::new(); n];
        let mut last_use: Vec<usize> = (0..n).collect();
        for idx in net.order() {
            let i = idx.index();
            for src in net.inputs(idx) {
                last_use[src.index()] = last_use[src.index()].max(i);
            }
            let node = &net.graph[idx];
            for p in node.op.params() {
                node_params[i].push(params.len());
                values.push(init_param(&node.op, &p, &mut rng));
                params.push(ParamSpec {
                    name: format!("{}.{}", node.name, p.name),
                    shape: p.shape,
                    node: i,
                });
            }
            if let Op::BatchNorm { channels } = node.op {
                bn[i] = Some(BnStats::new(channels));
            }
        }
        let mut readers: Vec<Vec<usize>> = vec![Vec::new(); n];
        for idx in net.order() {
            for src in net.inputs(idx) {
                readers[src.index()].push(idx.index());
            }
        }
        let fused_relu = (0..n)
            .map(|i| {
                let node = &net.graph[petgraph::graph::NodeIndex::new(i)];
                match (&node.op, readers[i].as_slice()) {
                    (Op::BatchNorm { .. }, [r])
                        if net.graph[petgraph::graph::NodeIndex::new(*r)].op == Op::Relu =>
                    {
                        Some(*r)
                    }
                    _ => None,
                }
            })
            .collect();
        Model {
            net,
            spec,
            masks: vec![None; params.len()],
            params,
            values,
            bn,
            node_params,
            last_use,
            fused_relu,
            zeroed: Vec::new(),
            step_key: 0,
        }
    }

    /// Whether any parameter is pruned.
    pub fn is_pruned(&self) -> bool {
        self.masks.iter().any(Option::is_some)
    }

    /// Parameters that are not pruned away (all of them in a dense model).
    pub fn nonzero_param_count(&self) -> u64 {
        self.values
            .iter()
            .enumerate()
            .map(|(k, v)| match self.masks.get(k).and_then(Option::as_ref) {
                Some(m) => m.iter().filter(|&&keep| keep).count() as u64,
                None => v.len() as u64,
            })
            .sum()
    }

    /// Replace the outputs of `nodes` by zeros in every later pass (layers removed at test
    /// time, as `study lesion` does); an empty list restores the network. Evaluation only: the
    /// removed layers get no gradient.
    pub fn set_zeroed(&mut self, nodes: &[usize]) -> Result<()> {
        let n = self.net.graph.node_count();
        if let Some(&bad) = nodes
            .iter()
            .find(|&&i| i >= n || i == self.net.input.index())
        {
            bail!("node {bad} cannot be removed (the network has nodes 1..{n})");
        }
        self.zeroed = nodes.to_vec();
        Ok(())
    }

    /// Trainable parameters of the instantiated model (counted from its tensors).
    pub fn param_count(&self) -> u64 {
        self.values.iter().map(|v| v.len() as u64).sum()
    }

    /// The count the zoo computes for the same DAG (must equal [`Model::param_count`]).
    pub fn zoo_param_count(&self) -> u64 {
        self.net
            .graph
            .node_weights()
            .map(|n| node_count(n).params)
            .sum()
    }

    /// Run the DAG on `x` with any [`Backend`]: the one interpreter of the network, shared by
    /// the CPU and the GPU. `p` holds the backend's handles of the parameters (parallel to
    /// [`Model::params`]) and `stats` its batch-norm running statistics (per node). Returns the
    /// output and the tape of the pass (activations are named by node index; empty unless the
    /// backend records).
    pub fn walk<B: Backend>(
        &self,
        b: &mut B,
        x: B::Act,
        p: &[B::Param],
        stats: &mut [Option<B::Stats>],
    ) -> Result<(B::Act, Tape<B>)> {
        let want = self.net.input_shape();
        let s = b.dims(&x);
        if (s[1], s[2], s[3]) != (want.c, want.h, want.w) {
            bail!(
                "images are {}×{}×{} but the model was built for {want}",
                s[1],
                s[2],
                s[3]
            );
        }
        let n = self.net.graph.node_count();
        let mut acts: Vec<Option<B::Act>> = (0..n).map(|_| None).collect();
        let input = self.net.input.index();
        acts[input] = Some(x);
        let mut tape = Tape::for_backend(b).with_key(self.step_key);
        let profiling = profile::enabled();
        for idx in self.net.order() {
            let i = idx.index();
            if i == input || acts[i].is_some() {
                // The input, or a ReLU already computed fused with its batch norm.
                continue;
            }
            let ins: Vec<usize> = self.net.inputs(idx).iter().map(|s| s.index()).collect();
            let xs: Vec<Input<'_, B>> = ins
                .iter()
                .map(|&s| (s, acts[s].as_ref().expect("inputs computed before use")))
                .collect();
            // A node's parameters are consecutive (created in node order).
            let ps = match self.node_params[i].first() {
                Some(&first) => &p[first..first + self.node_params[i].len()],
                None => &[],
            };
            let node = &self.net.graph[idx];
            // A batch norm whose only reader is a ReLU computes both and writes the ReLU's
            // activation.
            let out = self.fused_relu[i].unwrap_or(i);
            if profiling {
                b.fence()?;
            }
            let t0 = std::time::Instant::now();
            let fused = self.fused_relu[i].is_some();
            let y = tape.apply(b, &node.op, fused, out, &xs, ps, stats[i].as_mut())?;
            if profiling {
                b.fence()?;
                profile::add(node.op.kind(), t0.elapsed().as_secs_f64());
            }
            drop(xs);
            let y = if self.zeroed.contains(&i) || self.zeroed.contains(&out) {
                b.zeros(b.dims(&y))?
            } else {
                y
            };
            acts[out] = Some(y);
            // Free activations whose last reader has run (the tape keeps what backward needs).
            for &s in &ins {
                if self.last_use[s] == i && s != input {
                    acts[s] = None;
                }
            }
        }
        let y = acts[self.net.output.index()]
            .take()
            .expect("output computed");
        Ok((y, tape))
    }

    /// One pass of a batch on any backend: forward, the loss against `labels`, and — when the
    /// backend records — the reverse pass, leaving every parameter's gradient in the backend's
    /// store. Returns the logits, the mean loss and the number of correct predictions.
    pub fn pass<B: Backend>(
        &self,
        b: &mut B,
        x: B::Act,
        labels: &[Label],
        p: &[B::Param],
        stats: &mut [Option<B::Stats>],
    ) -> Result<(B::Act, f64, usize)> {
        let (logits, tape) = self.walk(b, x, p, stats)?;
        let (dlogits, loss) = b.cross_entropy(&logits, labels)?;
        if let Some(dy) = dlogits {
            let tb = std::time::Instant::now();
            let input = self.net.input.index();
            tape.backward(b, self.net.output.index(), dy, |id| id != input)?;
            if profile::enabled() {
                profile::add("backward (all)", tb.elapsed().as_secs_f64());
            }
        }
        let (mean, correct) = b.read_loss(loss)?;
        Ok((logits, mean, correct))
    }
}

/// Run `f` on a worker thread of rayon's pool (inline when already on one). A pass run from
/// outside the pool hands every op's parallel loop to the pool and sleeps until it is done:
/// hundreds of wake-ups per pass, measured at 10–17 % of a batch-1 ImageNet forward pass
/// (`benches/infer_latency.sh`). From a worker, the loops go to its own queue and it takes
/// part in them.
fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Steps and inference on the CPU backend.
impl<E: Elem> Model<E> {
    /// The current parameter values as CPU parameters (index = position in [`Model::params`]):
    /// a copy, for [`Model::logits_with`] to run many passes on without copying them again.
    pub fn cpu_params(&self) -> Vec<Param<E>> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| Param::new(i, v.clone()))
            .collect()
    }

    /// The logits (`N × classes`, row-major) of a forward pass without a tape: batch statistics
    /// (and running-statistics updates) when `train`, running statistics otherwise.
    pub fn logits(&mut self, x: Vec<E>, n: usize, train: bool) -> Result<Vec<E>> {
        let p = self.cpu_params();
        self.logits_with(&p, x, n, train)
    }

    /// [`Model::logits`] with the parameters `p` from [`Model::cpu_params`] (taken after the
    /// last change to the weights): repeated inference without copying the weights each time.
    pub fn logits_with(
        &mut self,
        p: &[Param<E>],
        x: Vec<E>,
        n: usize,
        train: bool,
    ) -> Result<Vec<E>> {
        on_worker(|| self.logits_here(p, x, n, train))
    }

    fn logits_here(&mut self, p: &[Param<E>], x: Vec<E>, n: usize, train: bool) -> Result<Vec<E>> {
        let mut ctx = CpuBackend::new(train, false);
        let s = self.net.input_shape();
        let xt: Act<E> = ctx.act(x, [n, s.c, s.h, s.w]);
        let mut bn = std::mem::take(&mut self.bn);
        let out = self.walk(&mut ctx, xt, p, &mut bn);
        self.bn = bn;
        Ok(read(&out?.0))
    }

    /// Mean cross-entropy of `x` against `labels`, with the gradient of every parameter when
    /// `train` (batch statistics; running statistics updated). Returns (loss, correct, grads).
    pub fn step(
        &mut self,
        x: Vec<E>,
        labels: &[Label],
        train: bool,
    ) -> Result<(f64, usize, Vec<Vec<E>>)> {
        // Not moved onto a worker as `logits` is: on batch-64 training steps interleaved runs
        // showed no difference outside this machine's noise (the wake-ups are a small part of
        // a step whose ops are large).
        let mut ctx = CpuBackend::new(train, train);
        let s = self.net.input_shape();
        let xt: Act<E> = ctx.act(x, [labels.len(), s.c, s.h, s.w]);
        let p = self.cpu_params();
        let mut bn = std::mem::take(&mut self.bn);
        let r = self.pass(&mut ctx, xt, labels, &p, &mut bn);
        self.bn = bn;
        let (_, loss, correct) = r?;
        let grads = if train {
            ctx.take_param_grads(&p)
        } else {
            Vec::new()
        };
        Ok((loss, correct, grads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{numeric_grad, rel_err};
    use sparsenet_analysis::topology::Pattern;
    use sparsenet_net::zoo::{named, Family, Layout};

    #[test]
    fn instantiated_count_equals_zoo_count() {
        for name in [
            "sparsenet-40-24",
            "densenet-bc-100-12",
            "resnet-20",
            "preresnet-164",
            "densenet-121",
            "resnet-50",
        ] {
            let spec = named(name).unwrap().spec(None);
            let m = Model::<f32>::new(&spec, spec.input_shape(), 0).unwrap();
            let (_, zoo) = sparsenet_net::zoo::build_and_count(&spec).unwrap();
            assert_eq!(m.param_count(), zoo.params, "{name}");
        }
        // The same spec on 28×28×1 data: counts follow the data (only the stem's input changes).
        let spec = named("sparsenet-40-24").unwrap().spec(None);
        let m = Model::<f32>::new(&spec, Shape::new(1, 28, 28), 0).unwrap();
        assert_eq!(m.param_count(), m.zoo_param_count());
        assert_eq!(m.param_count(), 757_252 - 2 * 48 * 9);
    }

    #[test]
    fn whole_tiny_sparsenet_gradient_check() {
        // A tiny SparseNet (one layer per block, k = 2, base 2) on 8×8×1 in f64: every parameter
        // gradient against central finite differences of the loss.
        let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 10, &[2], false, 3);
        spec.pattern = Some(Pattern::Sparse { base: 2 });
        gradient_check(&spec);
    }

    #[test]
    fn other_operators_and_dag_networks_gradient_check() {
        // The sum, mixed-link, dual-path and max operators (with their projections and split
        // convolutions) and a DAG block, through the one reverse pass, against finite
        // differences.
        let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 10, &[2], false, 3);
        spec.aggregate = sparsenet_net::zoo::Aggregate::Sum;
        gradient_check(&spec);
        spec.aggregate = sparsenet_net::zoo::Aggregate::Mixed { sum: 1 };
        gradient_check(&spec);
        spec.aggregate = sparsenet_net::zoo::Aggregate::Dual;
        gradient_check(&spec);
        spec.aggregate = sparsenet_net::zoo::Aggregate::Max;
        gradient_check(&spec);
        let dag = sparsenet_analysis::dag::BlockDag::from_edges(
            None,
            &[(0, 1), (0, 2), (1, 2), (0, 3), (2, 3)],
        )
        .unwrap();
        let mut spec = NetSpec::new(Family::Sparse, Layout::Cifar, 13, &[2], false, 3);
        spec.pattern = Some(Pattern::Dag(dag));
        gradient_check(&spec);
    }

    fn gradient_check(spec: &NetSpec) {
        let mut m = Model::<f64>::new(spec, Shape::new(1, 8, 8), 1).unwrap();
        let x: Vec<f64> = crate::testutil::rand_vec(2 * 64, 2);
        let labels: [Label; 2] = [0, 2];
        // Freeze BN running-stat updates from affecting the loss: training mode uses batch stats.
        let (_, _, grads) = m.step(x.clone(), &labels, true).unwrap();
        for (pi, g) in grads.iter().enumerate() {
            let base = m.values[pi].clone();
            let num = numeric_grad(&base, |v| {
                let saved = std::mem::replace(&mut m.values[pi], v.to_vec());
                let (l, _, _) = m.step(x.clone(), &labels, true).unwrap();
                m.values[pi] = saved;
                l
            });
            let e = rel_err(g, &num);
            assert!(e < 1e-6, "{}: {e}", m.params[pi].name);
        }
    }

    #[test]
    fn logits_with_kept_parameters_equal_logits() {
        // Two evaluation passes on one copy of the parameters (their 3×3 weights rearranged on
        // the first) give the bits of `logits`, which copies them each time.
        let spec = NetSpec::new(Family::Sparse, Layout::Cifar, 10, &[2], false, 4);
        let mut m = Model::<f32>::new(&spec, Shape::new(3, 8, 8), 5).unwrap();
        let x: Vec<f32> = crate::testutil::rand_vec(2 * 3 * 64, 6)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let want = m.logits(x.clone(), 2, false).unwrap();
        let p = m.cpu_params();
        assert_eq!(m.logits_with(&p, x.clone(), 2, false).unwrap(), want);
        assert_eq!(m.logits_with(&p, x, 2, false).unwrap(), want);
        assert!(want.iter().all(|v| v.is_finite()) && want.iter().any(|&v| v != 0.0));
    }
}
