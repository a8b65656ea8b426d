//! Payments at a PSP, Stripe's wire protocol: hakken creates a PaymentIntent with manual
//! capture when a buyer checks out, learns from signed webhooks that it was authorized,
//! confirms the seats and then captures (or voids, or refunds).
//!
//! This file only declares the parts for now; the gateway that ties them to holds and
//! orders comes with the API integration.

/// The REST client: PaymentIntents, refunds, events, over a bounded connection pool.
pub mod stripe;

/// `Stripe-Signature` verification (and signing, for tests), pure.
pub mod signature;

/// Webhook event parsing and the test/live key mode, pure.
pub mod webhook;
