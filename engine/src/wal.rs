//! The on-disk format: write-ahead-log records, section snapshots, event
//! definitions, audit entries and stored idempotent answers, and how they are framed.
//!
//! These are dedicated record types, never the in-memory domain structs, so the
//! format changes only on purpose. Every value on disk is framed as
//! `[format version: u8][crc32 of payload: u32 LE][bincode 2 payload]`, checked on
//! every read. Keys are big-endian so RocksDB's order is each section's log order.

use bincode::{Decode, Encode};

/// Bumped on any change to the types below; a store of another version is refused.
pub const FORMAT_VERSION: u8 = 7;

const FRAME_HEADER_LEN: usize = 5;

/// One state change of one section inventory, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Record {
    /// A hold was granted. Seats it found held by holds expired at `created_at_ms` were
    /// taken over; those holds (`reclaimed`) ended as expired in the same step.
    HoldCreated {
        hold: HoldRecord,
        reclaimed: Vec<u32>,
    },
    HoldExtended {
        hold: u32,
        expires_at_s: u32,
        at_ms: u64,
    },
    HoldReleased {
        hold: u32,
        at_ms: u64,
    },
    HoldExpired {
        hold: u32,
        at_ms: u64,
    },
    /// The hold became order `order`; its seats are sold.
    OrderConfirmed {
        order: u32,
        hold: u32,
        confirmed_at_ms: u64,
        buyer: BuyerRecord,
    },
    OrderCancelled {
        order: u32,
        at_ms: u64,
    },
    /// Ticket `index` of `order` got code version `version`; codes of older versions
    /// are dead from here on.
    TicketReissued {
        order: u32,
        index: u16,
        version: u16,
        at_ms: u64,
    },
    /// Ticket `index` of `order`, at code version `version`, let its holder in.
    TicketAdmitted {
        order: u32,
        index: u16,
        version: u16,
        admission: AdmissionRecord,
    },
    // -- Payments (`inventory/payments.rs`). A payment is keyed by the hold it checked
    // out; each step of its life is a record, so recovery reproduces every decision.
    /// Checkout: the hold is paying with `payment.psp_id`; it now expires at
    /// `expires_at_s` (extended once by the payment window, never past its lifetime).
    PaymentStarted {
        payment: PaymentRecord,
        expires_at_s: u32,
    },
    /// The PSP authorized the payment and order `order` was sold for it (from the live
    /// hold, or from a hold re-acquired for a late payment: the records before it say).
    PaymentOrdered {
        hold: u32,
        order: u32,
        at_ms: u64,
    },
    /// The authorization was captured: the money moved.
    PaymentCaptured {
        hold: u32,
        at_ms: u64,
    },
    /// The authorization must be voided (cancelled at the PSP, no money moved).
    PaymentVoidDue {
        hold: u32,
        at_ms: u64,
        reason: VoidReasonRecord,
    },
    PaymentVoided {
        hold: u32,
        at_ms: u64,
    },
    /// The payment's order was cancelled after capture: the money goes back.
    PaymentRefundDue {
        hold: u32,
        at_ms: u64,
    },
    PaymentRefunded {
        hold: u32,
        at_ms: u64,
    },
    /// The buyer's personal data of `order` was erased (crypto-shredding: the sealed
    /// blob, with the only wrapped copy of its data key, is dropped). The order, its
    /// seats and tickets stay as they are.
    BuyerErased {
        order: u32,
        at_ms: u64,
    },
    /// The buyer data of `order` was sealed afresh (key rotation: the same data, under
    /// the active master key), so the key that sealed it before can be retired.
    BuyerResealed {
        order: u32,
        sealed: Vec<u8>,
        at_ms: u64,
    },
}

/// A hold's payment at the PSP, as a snapshot stores it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct PaymentRecord {
    pub hold: u32,
    pub customer: String,
    /// The provider that took it (`stripe`, `test`).
    pub provider: String,
    /// The PSP's id (a Stripe PaymentIntent id).
    pub psp_id: String,
    pub amount_minor: u64,
    pub currency: String,
    /// The hold's units: what a late payment re-acquires.
    pub units: UnitsRecord,
    /// Given to the order the payment buys.
    pub buyer: BuyerRecord,
    pub started_at_ms: u64,
    pub state: PaymentStateRecord,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum PaymentStateRecord {
    AwaitingPayment,
    Ordered {
        order: u32,
    },
    Captured {
        order: u32,
    },
    VoidDue {
        reason: VoidReasonRecord,
        order: Option<u32>,
    },
    Voided {
        reason: VoidReasonRecord,
        order: Option<u32>,
    },
    /// `order` is `None` when the money was taken for no order (a late payment captured
    /// at the PSP before hakken voided it).
    RefundDue {
        order: Option<u32>,
    },
    Refunded {
        order: Option<u32>,
    },
}

/// Why an authorization is voided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum VoidReasonRecord {
    /// Authorized after the hold ended, and its seats were not re-acquired.
    Late,
    /// The PSP authorized another amount than the hold's.
    AmountMismatch,
    /// Never paid within the late-payment window: the PSP payment is cancelled so it
    /// can no longer be paid.
    Abandoned,
    /// The order was cancelled before its payment was captured.
    OrderCancelled,
}

/// The first (only) admission of a ticket.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AdmissionRecord {
    pub at_ms: u64,
    pub gate: String,
    /// The gate's id for the scan: a retry with the same id is the same scan.
    pub scan_id: String,
}

/// A ticket whose state is not the default (version 0, not admitted).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TicketRecord {
    pub index: u16,
    pub version: u16,
    /// When it got `version` (0 while at version 0): gate bundles report revocations since a time.
    pub reissued_at_ms: u64,
    pub admitted: Option<AdmissionRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct HoldRecord {
    pub hold: u32,
    pub customer: String,
    pub units: UnitsRecord,
    pub created_at_ms: u64,
    pub expires_at_s: u32,
    pub total_minor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum UnitsRecord {
    Seats(Vec<u32>),
    Quantity(u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OrderRecord {
    pub order: u32,
    pub hold: u32,
    pub customer: String,
    pub units: UnitsRecord,
    pub total_minor: u64,
    pub confirmed_at_ms: u64,
    pub cancelled: bool,
    /// When it was cancelled (0 unless `cancelled`): gate bundles report revocations since a time.
    pub cancelled_at_ms: u64,
    pub buyer: BuyerRecord,
    /// Tickets reissued or admitted, by index; the others are at version 0, unused.
    pub tickets: Vec<TicketRecord>,
}

/// Who paid for an order and how (as the payment step reported it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct BuyerRecord {
    pub payment_reference: String,
    /// `online`, `box_office` or `external`, as the API set it.
    pub channel: String,
    /// The buyer's name and email, sealed by the API (never plaintext on disk); empty
    /// once erased.
    pub sealed: Vec<u8>,
}

/// A section inventory's whole state after record `last_seq`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SectionSnapshot {
    pub last_seq: u64,
    pub next_hold: u32,
    pub holds: Vec<HoldRecord>,
    /// Every order, by order number.
    pub orders: Vec<OrderRecord>,
    /// Every payment, by hold number.
    pub payments: Vec<PaymentRecord>,
}

/// An event as stored: its definition, its venue's layout and the section keys it owns
/// (`first_section_key ..= first_section_key + sections - 1`, in venue order).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventDefinition {
    pub first_section_key: u32,
    pub event: EventRecord,
    pub venue: VenueRecord,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct EventRecord {
    pub id: String,
    pub name: String,
    pub venue_id: String,
    pub starts_at_ms: u64,
    pub on_sale_opens_at_ms: u64,
    pub on_sale_closes_at_ms: u64,
    pub currency: String,
    pub ticket_types: Vec<TicketTypeRecord>,
    /// `Event::language` (`ja`, `en`); since format version 6.
    pub language: String,
    /// `Event::queue`; since format version 7.
    pub queue: Option<QueueSettingsRecord>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct QueueSettingsRecord {
    pub opens_before_sale_s: u64,
    pub admit_per_s_min: u32,
    pub admit_per_s_max: u32,
    pub access_window_s: u64,
    pub places_max: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct TicketTypeRecord {
    pub id: String,
    pub name: String,
    pub category: u8,
    pub price_minor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct VenueRecord {
    pub id: String,
    pub name: String,
    /// (id, name) per category index.
    pub categories: Vec<(String, String)>,
    pub sections: Vec<SectionRecord>,
    /// `Venue::time_zone`, an IANA name; since format version 6.
    pub time_zone: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SectionRecord {
    pub id: String,
    pub name: String,
    pub kind: SectionKindRecord,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum SectionKindRecord {
    /// Rows as (label, seat count); seats row after row.
    Reserved {
        rows: Vec<(String, u32)>,
        seats: Vec<SeatRecord>,
    },
    GeneralAdmission {
        capacity: u32,
        category: u8,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SeatRecord {
    pub number: u16,
    pub category: u8,
    pub flags: u8,
    pub quality: u16,
}

/// Who made a change, as the audit log names them.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum PrincipalRecord {
    /// hakken itself: hold expiry, recovery.
    System,
    Customer(String),
    Admin,
    Gate(String),
}

/// One entry of the audit log: append-only, hash-chained. `seq` numbers entries from 1
/// without gaps; `prev_hash` is the previous entry's hash (zeros for the first); an
/// entry's hash is SHA-256 over its bincode encoding (see `store.rs`), so changing,
/// inserting or removing an entry breaks every link after it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: u64,
    /// For event-level entries (admin changes, refused scans not tied to a section);
    /// empty when `section` says where.
    pub event: String,
    pub section: Option<u32>,
    pub principal: PrincipalRecord,
    /// A fixed vocabulary: `hold`, `extend`, `release`, `expire`, `confirm`, `cancel`,
    /// `reissue`, `scan`, and admin actions (`event_create`, `event_update`, ...).
    pub action: String,
    pub hold: Option<u32>,
    pub order: Option<u32>,
    pub ticket: Option<u16>,
    /// `ok`, or the refusal (a scan's result).
    pub outcome: String,
    /// Free text: seats, gate, versions.
    pub detail: String,
    pub prev_hash: [u8; 32],
}

/// An audit entry as stored: the entry and its hash.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct AuditStored {
    pub entry: AuditRecord,
    pub hash: [u8; 32],
}

/// The answer stored under an idempotency key, replayed to retries until `expires_at_ms`.
/// The engine frames it and writes it, in the same batch as the records of the change it
/// answers when there is one; what `status` and `body` mean is the API's business (the
/// engine never reads them).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct IdempotentAnswer {
    pub expires_at_ms: u64,
    /// Of the request that got this answer: a retry with another fingerprint is refused.
    pub fingerprint: u64,
    pub status: u16,
    pub body: Vec<u8>,
}

/// A change to tell outside hakken (a buyer email, a webhook), written in the same batch as
/// the records it describes (`outbox.rs` makes them, the store's writer numbers them). It
/// names ids only: whoever delivers it reads the rest (the order, its buyer) at delivery
/// time, so an erased buyer is not kept here.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OutboxEntry {
    /// From 1, no gaps, never reused (the writer keeps the next one in `meta`).
    pub seq: u64,
    pub at_ms: u64,
    pub section: u32,
    pub kind: OutboxKindRecord,
    pub hold: Option<u32>,
    pub order: Option<u32>,
    pub ticket: Option<u16>,
    /// A reissued or admitted ticket's code version.
    pub version: Option<u16>,
    /// The gate that admitted a ticket; empty otherwise.
    pub gate: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Encode, Decode)]
pub enum OutboxKindRecord {
    OrderConfirmed,
    /// Cancelled, with its money refunded or its authorization voided.
    OrderRefunded,
    TicketReissued,
    /// A payment authorized after its hold ended, voided: no order.
    LatePaymentVoided,
    /// A payment authorized after its hold ended that got its seats again: an order.
    LatePaymentReacquired,
    HoldExpiredWhilePaying,
    TicketCheckedIn,
}

/// An outbox entry not delivered yet, or given up on, with what each destination
/// (`email`, or a webhook endpoint's URL) made of it so far. Delivered entries are deleted.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct OutboxStored {
    pub entry: OutboxEntry,
    pub deliveries: Vec<DeliveryRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct DeliveryRecord {
    pub destination: String,
    pub state: DeliveryStateRecord,
    pub attempts: u32,
    /// The last attempt's outcome label and detail (never a reply's text).
    pub last_outcome: String,
    pub next_attempt_at_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum DeliveryStateRecord {
    Pending,
    Delivered,
    /// Given up on (attempts exhausted, refused, endpoint gone): a dead letter.
    Dead,
    /// Nothing to deliver (the buyer was erased, the endpoint does not take the kind).
    Skipped,
}

/// Key of an audit entry: its sequence number, big-endian (RocksDB order is log order).
pub fn audit_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The bytes an audit entry's hash covers: its bincode encoding, unframed.
pub fn audit_hash_input(entry: &AuditRecord) -> Vec<u8> {
    bincode::encode_to_vec(entry, bincode_config()).expect("encoding into a Vec cannot fail")
}

/// One change of an event's waiting room (`waiting_room.rs`), in the order it happened.
/// Stored in the `queue` column family under [`room_key`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum RoomStored {
    Joined {
        customer: String,
        at_ms: u64,
    },
    /// The opening draw: the first `joiners` places shuffled with `seed` (the algorithm
    /// is `waiting_room/draw.rs`'s; the seed is also in the audit log).
    Drawn {
        seed: u64,
        joiners: u32,
        at_ms: u64,
    },
    Admitted {
        count: u32,
        at_ms: u64,
        until_ms: u64,
    },
    AccessUsed {
        place: u32,
        seats: u32,
        at_ms: u64,
    },
    Resolved {
        place: u32,
        bought: bool,
    },
    SoldOut {
        at_ms: u64,
    },
    /// Appended last: bincode numbers variants in order, and stored records keep theirs.
    Refused {
        place: u32,
        at_ms: u64,
    },
    /// Appended after `Refused`, for the same reason: a partial close (waiting buyers
    /// from `rank` on sold out).
    ClosedBehind {
        rank: u32,
        at_ms: u64,
    },
}

/// Key of a waiting-room record: the event id, a 0 byte (ids have none), the sequence
/// number big-endian (RocksDB's order is the room's log order).
pub fn room_key(event: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(event.len() + 9);
    key.extend_from_slice(event.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A stored value that cannot be trusted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("value too short ({0} bytes)")]
    Truncated(usize),
    #[error("format version {found}, this build reads {FORMAT_VERSION}")]
    Version { found: u8 },
    #[error("checksum mismatch")]
    Checksum,
    #[error("undecodable payload: {0}")]
    Decode(String),
    #[error("{0} trailing bytes after the payload")]
    Trailing(usize),
}

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Frames `value` for disk: version, checksum, payload.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    let mut framed = vec![0; FRAME_HEADER_LEN];
    bincode::encode_into_std_write(value, &mut framed, bincode_config()).expect("encoding into a Vec cannot fail");
    let checksum = crc32fast::hash(&framed[FRAME_HEADER_LEN..]);
    framed[0] = FORMAT_VERSION;
    framed[1..FRAME_HEADER_LEN].copy_from_slice(&checksum.to_le_bytes());
    framed
}

/// Checks and decodes a framed value.
pub fn decode<T: Decode<()>>(framed: &[u8]) -> Result<T, FrameError> {
    if framed.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Truncated(framed.len()));
    }
    if framed[0] != FORMAT_VERSION {
        return Err(FrameError::Version { found: framed[0] });
    }
    let checksum = u32::from_le_bytes(framed[1..FRAME_HEADER_LEN].try_into().expect("4 bytes"));
    let payload = &framed[FRAME_HEADER_LEN..];
    if crc32fast::hash(payload) != checksum {
        return Err(FrameError::Checksum);
    }
    let (value, used) =
        bincode::decode_from_slice(payload, bincode_config()).map_err(|error| FrameError::Decode(error.to_string()))?;
    if used != payload.len() {
        return Err(FrameError::Trailing(payload.len() - used));
    }
    Ok(value)
}

/// Pair assertion before a value goes to disk: what was framed decodes to the same
/// value. Debug builds only (it doubles the encoding work); a failure is a bug.
pub fn debug_assert_round_trip<T: Encode + Decode<()> + PartialEq + std::fmt::Debug>(value: &T, framed: &[u8]) {
    debug_assert_eq!(decode::<T>(framed).as_ref(), Ok(value), "a framed value must decode to itself");
}

/// One event's share of a group commit, as a message of the event's cluster log carries
/// it (cluster mode; see `store/replication.rs`): each section's framed records as the
/// writer got them, with their audit entries and the stored answer of the request
/// that made them. A standby writes exactly this into its own store. Outbox entries
/// stay with the node that made them (the owner's relay delivers them).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LogBatch {
    pub appends: Vec<LogAppend>,
}

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct LogAppend {
    pub section: u32,
    pub first_seq: u64,
    /// Framed [`Record`]s, `first_seq..`.
    pub records: Vec<Vec<u8>>,
    pub audit: Vec<AuditRecord>,
    /// The idempotency key and its framed [`IdempotentAnswer`].
    pub answer: Option<(Vec<u8>, Vec<u8>)>,
}

/// Key (in `meta`) of the last message of `event`'s cluster log this store holds.
pub fn cluster_position_key(event: &str) -> Vec<u8> {
    [b"cluster/".as_slice(), event.as_bytes()].concat()
}

/// Key of a WAL record: section key then sequence, big-endian.
pub fn record_key(section: u32, seq: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&section.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub fn parse_record_key(key: &[u8]) -> Option<(u32, u64)> {
    let key: &[u8; 12] = key.try_into().ok()?;
    let section = u32::from_be_bytes(key[..4].try_into().ok()?);
    let seq = u64::from_be_bytes(key[4..].try_into().ok()?);
    Some((section, seq))
}

/// Key of a section's snapshot.
pub fn snapshot_key(section: u32) -> [u8; 4] {
    section.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record::HoldCreated {
            hold: HoldRecord {
                hold: 7,
                customer: "alice".into(),
                units: UnitsRecord::Seats(vec![3, 4]),
                created_at_ms: 1_700_000_000_000,
                expires_at_s: 1_700_000_600,
                total_minor: 25_800,
            },
            reclaimed: vec![2],
        }
    }

    #[test]
    fn frames_round_trip() {
        let framed = encode(&sample());
        assert_eq!(framed[0], FORMAT_VERSION);
        assert_eq!(decode::<Record>(&framed), Ok(sample()));
    }

    #[test]
    fn damaged_frames_are_refused() {
        let framed = encode(&sample());
        let check = |bytes: Vec<u8>, expected: FrameError| assert_eq!(decode::<Record>(&bytes), Err(expected));
        check(framed[..3].to_vec(), FrameError::Truncated(3));
        let mut version = framed.clone();
        version[0] = 9;
        check(version, FrameError::Version { found: 9 });
        for bit in [8 * FRAME_HEADER_LEN, 8 * framed.len() - 1] {
            let mut flipped = framed.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            check(flipped, FrameError::Checksum);
        }
        let mut torn = framed.clone();
        torn.truncate(framed.len() - 2);
        check(torn, FrameError::Checksum);
    }

    #[test]
    fn idempotent_answers_are_framed_and_damage_is_an_error() {
        let answer = IdempotentAnswer { expires_at_ms: 9, fingerprint: 42, status: 201, body: b"{}".to_vec() };
        let framed = encode(&answer);
        assert_eq!(decode::<IdempotentAnswer>(&framed), Ok(answer));
        let mut flipped = framed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(decode::<IdempotentAnswer>(&flipped), Err(FrameError::Checksum));
    }

    #[test]
    fn keys_sort_in_log_order() {
        assert!(record_key(1, 255) < record_key(1, 256));
        assert!(record_key(1, u64::MAX) < record_key(2, 0));
        assert_eq!(parse_record_key(&record_key(9, 42)), Some((9, 42)));
        assert_eq!(parse_record_key(b"short"), None);
    }
}
