//! What the integration tests share: the executor and command tests' sandbox, world and project
//! ([`exec`]), and the serve tests' in-process server and waiting with a deadline ([`serve`]).

pub mod exec;
pub mod serve;
