//! Property tests of the analysis crate's invariants over depths and bases.

use num_bigint::BigUint;
use num_traits::One;
use petgraph::algo::is_cyclic_directed;
use petgraph::graph::NodeIndex;
use petgraph::visit::{Bfs, Reversed};
use proptest::prelude::*;
use sparsenet_analysis::bijection::{bijection_counts, check_bijection};
use sparsenet_analysis::claims::sparse_connections_closed_form;
use sparsenet_analysis::distance::{
    all_pairs_bfs, digit_sum, gradient_stats, gradient_stats_from_matrix,
};
use sparsenet_analysis::paths::{
    path_count, path_count_graph, path_length_histogram, path_length_histogram_graph,
};
use sparsenet_analysis::{Pattern, Topology};

fn any_pattern() -> impl Strategy<Value = Pattern> {
    prop_oneof![
        Just(Pattern::Plain),
        Just(Pattern::Res),
        Just(Pattern::Dense),
        (2usize..=8).prop_map(|base| Pattern::Sparse { base }),
        proptest::collection::btree_set(1usize..=12, 1..5)
            .prop_map(|s| Pattern::custom(&s.into_iter().collect::<Vec<_>>()).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn sparse_closed_form_equals_edge_count(n in 1usize..=300, base in 2usize..=8) {
        let t = Topology::new(Pattern::Sparse { base }, n).unwrap();
        let g = t.graph().unwrap();
        prop_assert_eq!(g.edge_count() as u64, sparse_connections_closed_form(n, base));
        prop_assert_eq!(t.connections(), g.edge_count() as u64);
    }

    #[test]
    fn digit_sum_is_bfs_distance_for_every_pair(n in 1usize..=300, base in 2usize..=8) {
        let t = Topology::new(Pattern::Sparse { base }, n).unwrap();
        let m = all_pairs_bfs(&t.graph().unwrap());
        for (j, row) in m.iter().enumerate() {
            for (l, hops) in row.iter().enumerate().skip(j + 1) {
                prop_assert_eq!(*hops, Some(digit_sum((l - j) as u64, base as u64) as u32));
            }
        }
        prop_assert_eq!(gradient_stats(&t.offsets(), n), gradient_stats_from_matrix(&m));
    }

    #[test]
    fn path_counts_follow_the_recurrence_on_the_graph(pattern in any_pattern(), n in 1usize..=60) {
        let t = Topology::new(pattern, n).unwrap();
        let g = t.graph().unwrap();
        let (s, e) = (NodeIndex::new(0), NodeIndex::new(n));
        let count = path_count(&t.offsets(), n);
        prop_assert_eq!(&count, &path_count_graph(&g, s, e).unwrap());
        let hist = path_length_histogram(&t.offsets(), n);
        prop_assert_eq!(hist.iter().sum::<BigUint>(), count);
        prop_assert_eq!(hist, path_length_histogram_graph(&g, s, e).unwrap());
    }

    #[test]
    fn dense_and_res_count_two_to_the_n_minus_one(n in 1usize..=2000) {
        let expect = BigUint::one() << (n - 1);
        for p in [Pattern::Dense, Pattern::Res] {
            let t = Topology::new(p, n).unwrap();
            prop_assert_eq!(path_count(&t.offsets(), n), expect.clone());
        }
    }

    #[test]
    fn blocks_are_acyclic_and_every_node_reaches_the_output(n in 1usize..=300, base in 2usize..=8) {
        for p in [Pattern::Plain, Pattern::Res, Pattern::Dense, Pattern::Sparse { base }] {
            let t = Topology::new(p, n).unwrap();
            let g = t.graph().unwrap();
            prop_assert!(!is_cyclic_directed(&g));
            let rev = Reversed(&g);
            let mut bfs = Bfs::new(rev, NodeIndex::new(n));
            let mut seen = 0;
            while bfs.next(rev).is_some() {
                seen += 1;
            }
            prop_assert_eq!(seen, n + 1);
        }
    }

    #[test]
    fn res_dense_bijection(n in 1usize..=12, big in 1usize..=3000) {
        let c = check_bijection(n).unwrap();
        prop_assert!(c.bijective && c.inverse_ok);
        prop_assert_eq!(c.res_paths, 1usize << n);
        let (r, d) = bijection_counts(big);
        prop_assert_eq!(r, d);
    }
}

mod dag_blocks {
    use super::*;
    use sparsenet_analysis::dag::{BlockDag, RandomModel};
    use sparsenet_analysis::dag_analysis::{
        dag_gradient_stats, dag_path_count, dag_path_length_histogram,
    };

    /// A random valid DAG block: random forward edges among `n` layers, completed with the
    /// input and output the generators use.
    fn any_dag() -> impl Strategy<Value = BlockDag> {
        (
            2usize..=40,
            proptest::collection::vec((0usize..40, 0usize..40), 0..120),
        )
            .prop_map(|(n, pairs)| {
                let mut edges: Vec<(usize, usize)> = pairs
                    .into_iter()
                    .filter(|&(a, b)| a < n && b < n && a != b)
                    .map(|(a, b)| (a.min(b) + 1, a.max(b) + 1))
                    .collect();
                edges.sort_unstable();
                edges.dedup();
                let (mut has_in, mut has_out) = (vec![false; n + 2], vec![false; n + 2]);
                for &(a, b) in &edges {
                    has_out[a] = true;
                    has_in[b] = true;
                }
                for v in 1..=n {
                    if !has_in[v] {
                        edges.push((0, v));
                    }
                    if !has_out[v] {
                        edges.push((v, n + 1));
                    }
                }
                BlockDag::from_edges(Some(n + 2), &edges).expect("valid by construction")
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        #[test]
        fn path_count_is_the_histogram_sum_and_agrees_with_petgraph(d in any_dag()) {
            let h = dag_path_length_histogram(&d);
            let sum: BigUint = h.iter().sum();
            prop_assert_eq!(&sum, &dag_path_count(&d));
            let g = d.graph();
            let (a, b) = (NodeIndex::new(0), NodeIndex::new(d.nodes() - 1));
            prop_assert_eq!(Some(sum), path_count_graph(&g, a, b));
            prop_assert_eq!(
                dag_gradient_stats(&d),
                gradient_stats_from_matrix(&all_pairs_bfs(&g))
            );
        }

        #[test]
        fn edge_lists_round_trip_through_dot(d in any_dag()) {
            prop_assert_eq!(&BlockDag::parse_dot(&d.to_dot(), "x.dot").unwrap(), &d);
            prop_assert_eq!(&BlockDag::parse_edge_list(&d.to_edge_list(), "x").unwrap(), &d);
            let json = serde_json::to_string(&d).unwrap();
            prop_assert_eq!(&serde_json::from_str::<BlockDag>(&json).unwrap(), &d);
        }

        #[test]
        fn bfs_agrees_with_the_offset_programme_on_offset_patterns(
            p in any_pattern(), n in 1usize..=60
        ) {
            let t = Topology::new(p.clone(), n).unwrap();
            let edges: Vec<(usize, usize)> = (1..=n)
                .flat_map(|l| t.inputs(l).into_iter().map(move |j| (j, l)))
                .collect();
            // Patterns whose last layer is not reached by every node are not blocks with an
            // output; the offset programme covers them, the DAG reader refuses them.
            if let Ok(d) = BlockDag::from_edges(Some(n + 1), &edges) {
                prop_assert_eq!(dag_gradient_stats(&d), gradient_stats(&p.offsets(n), n));
                prop_assert_eq!(dag_path_count(&d), path_count(&p.offsets(n), n));
            }
        }

        #[test]
        fn generated_blocks_are_valid_and_seeded(n in 3usize..=50, seed in 0u64..1000, m in 1usize..3) {
            for model in [
                RandomModel::ErdosRenyi { p: 0.15 },
                RandomModel::BarabasiAlbert { m },
                RandomModel::WattsStrogatz { k: 2, p: 0.3 },
            ] {
                let d = BlockDag::random(model, n, seed).unwrap();
                prop_assert_eq!(d.nodes(), n + 2);
                prop_assert_eq!(&d, &BlockDag::random(model, n, seed).unwrap());
            }
        }
    }
}
