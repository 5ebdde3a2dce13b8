//! The latchkey server: CLI, configuration, HTTP API, OAuth endpoints, web UI and the background refresher,
//! wired around the storage, crypto and OAuth crates.

pub mod api;
pub mod app;
pub mod assets;
pub mod audit;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod fairness;
pub mod flows;
pub mod keys;
pub mod ops;
pub mod pages;
pub mod presets;
pub mod sealing;
pub mod service;
pub mod setup;
pub mod state;
pub mod tokens;
pub mod web;
pub mod webhooks;

pub use app::Application;
pub use config::Config;
