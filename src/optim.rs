//! Optimisers over the model's flat parameter vectors (dfdx's own optimisers need compile-time
//! shapes): SGD with (Nesterov) momentum and weight decay, and Adam — PyTorch's update rules.

use serde::{Deserialize, Serialize};

/// Which optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// SGD with Nesterov momentum (the paper's choice).
    Sgd,
    /// Adam (β = 0.9, 0.999; ε = 1e-8, PyTorch's defaults), weight decay added to the gradient.
    Adam,
}

crate::choice_table!(Optimizer {
    Sgd => "sgd", "SGD with Nesterov momentum (the paper's choice)",
    Adam => "adam", "Adam (β = 0.9, 0.999; ε = 1e-8, PyTorch's defaults), weight decay added to the gradient",
});

/// Adam's fixed coefficients (PyTorch's defaults). Every backend reads them from [`ADAM`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamCoefficients {
    /// First-moment decay β₁.
    pub beta1: f32,
    /// Second-moment decay β₂.
    pub beta2: f32,
    /// ε added to the denominator.
    pub eps: f32,
}

/// The Adam coefficients of both backends.
pub const ADAM: AdamCoefficients = AdamCoefficients {
    beta1: 0.9,
    beta2: 0.999,
    eps: 1e-8,
};

impl AdamCoefficients {
    /// The bias corrections `(1 − β₁ᵗ, 1 − β₂ᵗ)` of update number `step` (1-based).
    pub fn bias_corrections(&self, step: u64) -> (f32, f32) {
        let t = step as i32;
        (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t))
    }
}

/// Hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Optimiser.
    pub kind: Optimizer,
    /// Momentum (SGD).
    pub momentum: f32,
    /// Nesterov momentum (SGD).
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f32,
}

/// Optimiser state: one buffer per parameter (two for Adam) and the step count.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Momentum buffers (SGD) or first moments (Adam).
    pub m: Vec<Vec<f32>>,
    /// Second moments (Adam; empty for SGD).
    pub v: Vec<Vec<f32>>,
    /// Updates taken.
    pub steps: u64,
}

impl State {
    /// Zeroed state for parameters of these sizes.
    pub fn new(cfg: &Config, sizes: &[usize]) -> Self {
        let zeros = || sizes.iter().map(|&n| vec![0f32; n]).collect();
        State {
            m: zeros(),
            v: if cfg.kind == Optimizer::Adam {
                zeros()
            } else {
                Vec::new()
            },
            steps: 0,
        }
    }
}

/// One update of every parameter with learning rate `lr`. Where `masks[i]` is given, the
/// elements it clears are left alone, and so is their optimiser state: a pruned weight (zero,
/// with zero state since it was pruned) stays exactly zero, weight decay included.
pub fn update(
    cfg: &Config,
    st: &mut State,
    lr: f32,
    params: &mut [Vec<f32>],
    grads: &[Vec<f32>],
    masks: &[Option<Vec<bool>>],
) {
    st.steps += 1;
    let t = st.steps as i32;
    for (i, (p, g)) in params.iter_mut().zip(grads).enumerate() {
        let mask = masks.get(i).and_then(Option::as_deref);
        let keep = |j: usize| mask.is_none_or(|m| m[j]);
        match cfg.kind {
            Optimizer::Sgd => {
                let buf = &mut st.m[i];
                for (j, ((w, &gr), b)) in p.iter_mut().zip(g).zip(buf.iter_mut()).enumerate() {
                    if !keep(j) {
                        continue;
                    }
                    let d = gr + cfg.weight_decay * *w;
                    // PyTorch: the first step initialises the buffer to the gradient.
                    *b = if t == 1 { d } else { cfg.momentum * *b + d };
                    let step = if cfg.nesterov {
                        d + cfg.momentum * *b
                    } else {
                        *b
                    };
                    *w -= lr * step;
                }
            }
            Optimizer::Adam => {
                let (b1, b2, eps) = (ADAM.beta1, ADAM.beta2, ADAM.eps);
                let (c1, c2) = ADAM.bias_corrections(st.steps);
                let (m, v) = (&mut st.m[i], &mut st.v[i]);
                for (j, (((w, &gr), mi), vi)) in p
                    .iter_mut()
                    .zip(g)
                    .zip(m.iter_mut())
                    .zip(v.iter_mut())
                    .enumerate()
                {
                    if !keep(j) {
                        continue;
                    }
                    let d = gr + cfg.weight_decay * *w;
                    *mi = b1 * *mi + (1.0 - b1) * d;
                    *vi = b2 * *vi + (1.0 - b2) * d * d;
                    *w -= lr * (*mi / c1) / ((*vi / c2).sqrt() + eps);
                }
            }
        }
    }
}

/// Learning-rate schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The paper's: ÷10 at 50 % and again at 75 % of the epochs.
    Step,
    /// Cosine annealing from the base rate to 0 over the epochs.
    Cosine,
    /// Constant.
    Constant,
}

crate::choice_table!(Schedule {
    Step => "step", "The paper's: ÷10 at 50 % and again at 75 % of the epochs",
    Cosine => "cosine", "Cosine annealing from the base rate to 0 over the epochs",
    Constant => "constant", "Constant",
});

/// Learning rate for `epoch` (0-based) of `epochs`.
pub fn learning_rate(s: Schedule, base: f32, epoch: usize, epochs: usize) -> f32 {
    match s {
        Schedule::Constant => base,
        Schedule::Step => {
            let f = epoch as f64 / epochs.max(1) as f64;
            if f >= 0.75 {
                base * 0.01
            } else if f >= 0.5 {
                base * 0.1
            } else {
                base
            }
        }
        Schedule::Cosine => {
            let f = epoch as f64 / epochs.max(1) as f64;
            (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * f).cos())) as f32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesterov_sgd_by_hand() {
        // w = 1, g = 0.5, wd = 0.1, μ = 0.9, lr = 0.1:
        // step 1: d = 0.5 + 0.1 = 0.6, b = 0.6, update d + μb = 1.14 → w = 1 − 0.114 = 0.886.
        // step 2 (g = 0.5): d = 0.5 + 0.0886 = 0.5886, b = 0.54 + 0.5886 = 1.1286,
        //         update 0.5886 + 1.01574 = 1.60434 → w = 0.886 − 0.160434 = 0.725566.
        let cfg = Config {
            kind: Optimizer::Sgd,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.1,
        };
        let mut p = vec![vec![1.0f32]];
        let mut st = State::new(&cfg, &[1]);
        update(&cfg, &mut st, 0.1, &mut p, &[vec![0.5]], &[]);
        assert!((p[0][0] - 0.886).abs() < 1e-6);
        update(&cfg, &mut st, 0.1, &mut p, &[vec![0.5]], &[]);
        assert!((p[0][0] - 0.725566).abs() < 1e-5, "{}", p[0][0]);
    }

    #[test]
    fn masked_weights_and_their_state_stay_exactly_zero() {
        // Element 1 is pruned (zero, zero state): with weight decay, momentum and Adam, and a
        // nonzero gradient, it stays 0 while element 0 moves.
        for kind in [Optimizer::Sgd, Optimizer::Adam] {
            let cfg = Config {
                kind,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.1,
            };
            let mut p = vec![vec![1.0f32, 0.0]];
            let mut st = State::new(&cfg, &[2]);
            let masks = [Some(vec![true, false])];
            for _ in 0..3 {
                update(&cfg, &mut st, 0.1, &mut p, &[vec![0.5, 0.7]], &masks);
            }
            assert_eq!(p[0][1], 0.0, "{kind:?}");
            assert_eq!(st.m[0][1], 0.0, "{kind:?}");
            assert!(p[0][0] < 1.0, "{kind:?}");
            // Without the mask the same gradient moves it.
            update(&cfg, &mut st, 0.1, &mut p, &[vec![0.5, 0.7]], &[]);
            assert!(p[0][1] != 0.0, "{kind:?}");
        }
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // Bias-corrected first step: m̂ = g, v̂ = g², so the step is lr·g/|g| = lr.
        let cfg = Config {
            kind: Optimizer::Adam,
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        };
        let mut p = vec![vec![1.0f32, -1.0]];
        let mut st = State::new(&cfg, &[2]);
        update(&cfg, &mut st, 0.01, &mut p, &[vec![3.0, -0.2]], &[]);
        assert!((p[0][0] - 0.99).abs() < 1e-6 && (p[0][1] + 0.99).abs() < 1e-6);
    }

    #[test]
    fn schedules() {
        assert_eq!(learning_rate(Schedule::Step, 0.1, 0, 300), 0.1);
        assert!((learning_rate(Schedule::Step, 0.1, 150, 300) - 0.01).abs() < 1e-9);
        assert!((learning_rate(Schedule::Step, 0.1, 225, 300) - 0.001).abs() < 1e-9);
        assert!((learning_rate(Schedule::Cosine, 0.1, 5, 10) - 0.05).abs() < 1e-7);
    }
}
