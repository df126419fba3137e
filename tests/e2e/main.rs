//! End-to-end tests: the real `hookflow` binary on 127.0.0.1:0, a real SQLite file, real
//! plugins compiled to wasm32-wasip2. One binary, one module per area.

mod common;

mod access;
mod actions;
mod api;
mod audit;
mod batch_intake;
mod browser;
mod catalog;
mod cli;
mod console;
mod defaults;
mod destinations;
mod detections;
mod hardening;
mod intake;
mod interactions;
mod javascript;
mod lifecycle;
mod logs;
mod loops;
mod metrics;
mod multiprocess;
mod openapi;
mod plugins;
mod python;
mod queue;
mod receiver;
mod recovery;
mod retention;
mod routing;
mod run_archive;
mod sandbox;
mod secrets_at_rest;
mod steps;
