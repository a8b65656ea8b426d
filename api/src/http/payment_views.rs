//! JSON bodies of the payment endpoints (`payments.rs`): checkout, a hold's payment,
//! the browser's PSP settings and reconciliation.

use hakken_engine::inventory::{Payment, PaymentState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::views::{BuyerView, HoldView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// The customer who made the hold.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: String,
    /// Who pays: kept encrypted with the order (see the README's buyer data).
    pub buyer: BuyerView,
}

/// The longest a payment read may wait for the payment to move (`wait_ms`).
pub const PAYMENT_WAIT_MAX_MS: u64 = 30_000;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PaymentQuery {
    /// The customer who made the hold.
    #[param(
        required = true,
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "customer-42"
    )]
    pub customer: Option<String>,
    /// Wait up to this many ms (at most 30000) while the payment awaits the PSP: the
    /// answer comes as soon as it moves (a long poll). 0 or absent: answer at once.
    #[param(maximum = 30000, example = 10000)]
    pub wait_ms: Option<u64>,
}

/// A hold's payment at the PSP.
#[derive(Serialize, ToSchema)]
pub struct PaymentView {
    /// The PSP's id (a Stripe PaymentIntent, `pi_...`).
    pub id: String,
    pub hold: String,
    /// `awaiting_payment`, `ordered` (authorized; sold, capture pending), `captured`,
    /// `void_pending`, `voided`, `refund_pending`, `refunded`.
    pub status: &'static str,
    /// Why it was voided (`late`, `amount_mismatch`, `abandoned`, `order_cancelled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub void_reason: Option<&'static str>,
    pub amount: u64,
    pub currency: String,
    /// `test` or `stripe`.
    pub provider: String,
    /// What the buyer's browser confirms the payment with (Stripe.js); only in the
    /// checkout's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The order the payment bought, once authorized.
    pub order: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckoutResponse {
    pub payment: PaymentView,
    /// The hold, with its expiry moved by the payment window (`null` once it ended).
    pub hold: Option<HoldView>,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentResponse {
    pub payment: PaymentView,
}

/// What a browser needs to pay with Stripe.js (card data never reaches hakken).
#[derive(Serialize, ToSchema)]
pub struct PaymentsConfigView {
    /// `test`, `stripe` or `external` (no payments: holds are confirmed by a sales channel).
    pub provider: &'static str,
    pub publishable_key: Option<String>,
    /// The PSP's API (for `test`, hakken's embedded one on loopback).
    pub api_base: Option<String>,
}

/// A mismatch between hakken's payments and orders and the PSP's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MismatchView {
    /// `missing_at_psp`, `unknown_payment`, `amount_differs`, `captured_without_order`,
    /// `order_without_capture`, `order_without_payment`, `cancelled_but_captured`, `state_differs`.
    pub kind: &'static str,
    pub payment: Option<String>,
    pub order: Option<String>,
    pub detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReconcileReport {
    /// No mismatch.
    pub ok: bool,
    /// hakken's payments, orders, and the PSP's PaymentIntents made by hakken.
    pub payments: usize,
    pub orders: usize,
    pub psp_payments: usize,
    /// Payments with a capture, void or refund still owed (the sweep retries them).
    pub pending: usize,
    pub mismatches: Vec<MismatchView>,
}

pub fn payment_status(state: PaymentState) -> &'static str {
    match state {
        PaymentState::AwaitingPayment => "awaiting_payment",
        PaymentState::Ordered(_) => "ordered",
        PaymentState::Captured(_) => "captured",
        PaymentState::VoidDue { .. } => "void_pending",
        PaymentState::Voided { .. } => "voided",
        PaymentState::RefundDue(_) => "refund_pending",
        PaymentState::Refunded(_) => "refunded",
    }
}

pub fn payment_view(payment: &Payment, client_secret: Option<String>) -> PaymentView {
    let void_reason = match payment.state {
        PaymentState::VoidDue { reason, .. } | PaymentState::Voided { reason, .. } => Some(reason.as_str()),
        _ => None,
    };
    PaymentView {
        id: payment.psp_id.clone(),
        hold: payment.hold.to_string(),
        status: payment_status(payment.state),
        void_reason,
        amount: payment.amount_minor,
        currency: payment.currency.clone(),
        provider: payment.provider.clone(),
        client_secret,
        order: payment.order().map(|order| order.to_string()),
    }
}
