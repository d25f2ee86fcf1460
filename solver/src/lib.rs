//! moeplan-solver: the pure optimisation core (placement problems in, plans and bounds out; no I/O).

pub mod problem;
