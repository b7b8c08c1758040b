//! The speedup model: what a run's call counts imply for wall-clock time when
//! one drafter forward pass costs `c` target passes.

/// Modelled speedup over plain decoding (one target pass per token):
/// `tokens / (target_calls + c · draft_calls)`. A verification pass is taken to
/// cost one decode step (true while decoding is bound by reading the weights).
pub fn modelled(tokens: u64, target_calls: u64, draft_calls: u64, cost_ratio: f64) -> f64 {
    tokens as f64 / (target_calls as f64 + cost_ratio * draft_calls as f64)
}

/// The cost ratio c measured on this machine: seconds per drafter pass over
/// seconds per plain target pass.
pub fn measured_cost_ratio(
    draft_seconds: f64,
    draft_calls: u64,
    plain_seconds: f64,
    plain_calls: u64,
) -> f64 {
    if draft_calls == 0 || plain_calls == 0 || plain_seconds <= 0.0 {
        return 0.0;
    }
    (draft_seconds / draft_calls as f64) / (plain_seconds / plain_calls as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::acceptance::exact;

    #[test]
    fn a_perfect_drafter_gives_the_closed_form() {
        // γ = 4, every draft accepted: each round drafts 4 tokens (4 drafter
        // passes) and emits 5 with one target pass.
        for c in [0.0, 0.05, 0.5, 1.0] {
            let rounds = 10;
            let s = modelled(5 * rounds, rounds, 4 * rounds, c);
            assert!((s - exact::speedup(1.0, 4, c)).abs() < 1e-12);
            assert!((s - 5.0 / (1.0 + 4.0 * c)).abs() < 1e-12);
        }
        // No drafting at all is plain decoding.
        assert_eq!(modelled(48, 48, 0, 0.3), 1.0);
        assert!((measured_cost_ratio(2.0, 100, 10.0, 100) - 0.2).abs() < 1e-12);
        assert_eq!(measured_cost_ratio(1.0, 0, 1.0, 10), 0.0);
    }

    #[test]
    fn simulated_rounds_match_the_expected_speedup() {
        // Rounds of γ drafts accepted i.i.d. with probability α: the counts'
        // ratio converges to (1 − α^(γ+1)) / ((1 − α)(γ c + 1)).
        let (alpha, gamma, c) = (0.7, 4usize, 0.1);
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let rounds = 200_000u64;
        let mut tokens = 0u64;
        let mut per_round = (0.0f64, 0.0f64);
        for _ in 0..rounds {
            let accepted = (0..gamma).take_while(|_| next() < alpha).count() as u64;
            tokens += accepted + 1;
            per_round.0 += (accepted + 1) as f64;
            per_round.1 += ((accepted + 1) * (accepted + 1)) as f64;
        }
        let s = modelled(tokens, rounds, gamma as u64 * rounds, c);
        // 95% interval of the mean tokens per round, scaled by the round cost.
        let (mean, lo, hi) =
            crate::primitives::stats::mean_interval(per_round.0, per_round.1, rounds);
        let cost = 1.0 + gamma as f64 * c;
        let expected = exact::speedup(alpha, gamma, c);
        assert!((s - mean / cost).abs() < 1e-12);
        assert!(
            lo / cost <= expected && expected <= hi / cost,
            "{expected} outside [{}, {}]",
            lo / cost,
            hi / cost
        );
        assert!(
            (exact::tokens_per_call(alpha, gamma) - (1.0 - alpha.powi(5)) / (1.0 - alpha)).abs()
                < 1e-12
        );
    }
}
