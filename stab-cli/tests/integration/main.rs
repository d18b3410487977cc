//! stab-cli's integration tests in one binary (each file was one, and each compiled and
//! linked its dependencies' generic code again). Most run the `stab` binary as a user would.

#[path = "../../../testsupport/assets.rs"]
mod assets;
#[path = "../../../testsupport/stab_cli.rs"]
mod stab_cli;

mod analyze;
mod cli;
mod cli_reference;
mod device_wgpu;
mod embed;
mod hostile;
mod hub_data;
mod outputs;
mod props;
mod seed_batch;
mod sequential;
mod stop_failed;
mod tracking;
mod tune;
