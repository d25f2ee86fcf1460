//! EPLB's README example (2 layers, 12 experts, 16 replicas, 4 groups, 2 nodes, 8 GPUs).

use moeplan_solver::eplb::rebalance_experts;

#[test]
fn readme_example_phy2log() {
    let weight = [
        [
            90., 132., 40., 61., 104., 165., 39., 4., 73., 56., 183., 86.,
        ],
        [
            20., 107., 104., 64., 19., 197., 187., 157., 172., 86., 16., 27.,
        ],
    ];
    let want = [
        [5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1],
        [7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1],
    ];
    for (w, expect) in weight.iter().zip(want) {
        assert_eq!(rebalance_experts(w, 16, 4, 2, 8), expect.to_vec());
    }
}
