//! Waiting for a lock, whatever the backend: the local queue of waiters per
//! key ([`queue`]), what ends a wait early ([`stops`]), and the one waiting
//! loop ([`engine`]) that the single-server and Redlock backends drive with
//! their own notion of an attempt.

pub(crate) mod engine;
pub(crate) mod queue;
pub(crate) mod stops;

pub(crate) use engine::{wait_for_grant, Attempter, Outcome, Policy, Turn};
pub(crate) use queue::KeyQueues;
pub(crate) use stops::Stops;
