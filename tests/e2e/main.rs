//! End-to-end tests: the real `ferricorn` binary on loopback, real requests,
//! real signals. Split by area.

mod broker;
mod channels;
mod config;
mod example;
mod h2;
mod http;
mod lifecycle;
mod logs;
mod metrics;
mod process;
mod protocol;
mod support;
mod tls;
mod upgrade;
mod websocket;
