//! Test support shared by the integration tests of several crates (never a dependency of
//! anything shipped). Network namespaces are what both the agent's and the service's tests
//! need to use addresses other than loopback without sending traffic off the machine.

pub mod netns;
