//! Running a good_lp model on HiGHS directly, to get what good_lp does not pass on: the MIP dual
//! bound, a warm start by column values, a time limit and a quiet, single-threaded, seeded run.

use good_lp::solvers::highs::highs;
use good_lp::{Constraint, Expression, ProblemVariables, SolverModel};
use highs::HighsModelStatus;

/// How a MIP run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MipStatus {
    /// Proven optimal (within the relative gap asked for).
    Optimal,
    /// Stopped at the time limit with a feasible solution.
    TimeLimit,
}

/// The result of a MIP run. Objective and bound exclude the objective's constant term (good_lp
/// drops it): callers add it back.
#[derive(Debug, Clone)]
pub struct MipResult {
    /// How the run ended.
    pub status: MipStatus,
    /// Column values, in variable creation order.
    pub values: Vec<f64>,
    /// Objective of `values`, constant term excluded.
    pub objective: f64,
    /// HiGHS's proven lower bound on the objective, constant term excluded.
    pub bound: f64,
}

/// A MIP that found no solution.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MipError {
    /// HiGHS proved the model infeasible.
    #[error("the model is infeasible")]
    Infeasible,
    /// No solution within the time limit, or a HiGHS failure.
    #[error("HiGHS found no solution: {0}")]
    NoSolution(String),
}

/// Minimises `objective` subject to `constraints` with HiGHS, starting from `initial` (column
/// values in variable creation order) if given, for at most `time_limit` seconds.
pub fn minimise(
    vars: ProblemVariables,
    objective: Expression,
    constraints: Vec<Constraint>,
    initial: Option<&[f64]>,
    time_limit: f64,
    rel_gap: f64,
) -> Result<MipResult, MipError> {
    let mut problem = vars.minimise(objective).using(highs);
    for c in constraints {
        problem.add_constraint(c);
    }
    let mut model = problem.into_inner();
    model.make_quiet();
    let opts: [(&str, f64); 2] = [
        ("time_limit", time_limit.max(0.01)),
        ("mip_rel_gap", rel_gap),
    ];
    for (k, v) in opts {
        let _ = model.try_set_option(k, v);
    }
    let _ = model.try_set_option("random_seed", 0);
    let _ = model.try_set_option("threads", 1);
    let _ = model.try_set_option("mip_threads", 1);
    if let Some(init) = initial {
        model.set_solution(Some(init), None, None, None);
    }
    let solved = model
        .try_solve()
        .map_err(|e| MipError::NoSolution(format!("{e:?}")))?;
    let status = match solved.status() {
        HighsModelStatus::Optimal => MipStatus::Optimal,
        HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => {
            return Err(MipError::Infeasible);
        }
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedSolutionLimit => MipStatus::TimeLimit,
        other => return Err(MipError::NoSolution(format!("{other:?}"))),
    };
    if solved.primal_solution_status() != highs::HighsSolutionStatus::Feasible {
        return Err(MipError::NoSolution("no feasible solution".into()));
    }
    let values = solved.get_solution().columns().to_vec();
    let objective = solved.objective_value();
    let bound = solved
        .double_info_value(c"mip_dual_bound")
        .ok()
        .filter(|b| b.is_finite())
        .unwrap_or(f64::NEG_INFINITY);
    Ok(MipResult {
        status,
        values,
        objective,
        bound,
    })
}
