//! Gate decisions: the scan vocabulary ([`ScanOutcome`]), the doors-open policy, and
//! everything a scan can decide before any ticket state is read ([`check`]): the text
//! is a genuine code or barcode of a known event, for the event the gate admits to,
//! after the doors opened. What is left (used? reissued? refunded?) only the section
//! that sold the ticket can say ([`crate::inventory::Inventory::scan`]).

use crate::clock::Millis;
use crate::ids::{OrderNumber, SectionKey};
use crate::wal::AdmissionRecord;

use super::barcode::{constant_time_eq, Barcode};
use super::code::{self, EventKey, CODE_TEXT_BYTES_MAX};

/// What a scan found. [`ScanOutcome::as_str`] is its name on the wire and in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanOutcome {
    /// Let in now, or earlier by this same scan (a retry with the same scan id).
    Admitted(AdmissionRecord),
    /// Let in before, by another scan: the ticket is being used twice.
    AlreadyAdmitted(AdmissionRecord),
    /// An older code of a reissued ticket.
    Revoked { current_version: u16 },
    /// The order was cancelled (refunded).
    Cancelled,
    /// Not a genuine code or barcode of a ticket that exists (or of a version never issued).
    Invalid,
    /// A genuine ticket of another event than the gate's.
    WrongEvent,
    /// Scanned before the doors opened.
    NotYetValid,
}

impl ScanOutcome {
    /// Every name, for documentation and tests.
    pub const NAMES: [&'static str; 7] =
        ["admitted", "already_admitted", "revoked", "cancelled", "invalid", "wrong_event", "not_yet_valid"];

    pub fn as_str(&self) -> &'static str {
        match self {
            ScanOutcome::Admitted(_) => "admitted",
            ScanOutcome::AlreadyAdmitted(_) => "already_admitted",
            ScanOutcome::Revoked { .. } => "revoked",
            ScanOutcome::Cancelled => "cancelled",
            ScanOutcome::Invalid => "invalid",
            ScanOutcome::WrongEvent => "wrong_event",
            ScanOutcome::NotYetValid => "not_yet_valid",
        }
    }

    /// The ticket's admission, when it has one (admitted or already admitted).
    pub fn admission(&self) -> Option<&AdmissionRecord> {
        match self {
            ScanOutcome::Admitted(admission) | ScanOutcome::AlreadyAdmitted(admission) => Some(admission),
            _ => None,
        }
    }

    /// Whether the code was genuine and names a ticket (so a gate may show it).
    pub fn names_ticket(&self) -> bool {
        !matches!(self, ScanOutcome::Invalid | ScanOutcome::WrongEvent | ScanOutcome::NotYetValid)
    }
}

/// When the doors open for an event starting at `starts_at`: scans before are
/// [`ScanOutcome::NotYetValid`].
pub fn doors_open_at(starts_at: Millis, doors_open_before_start_s: u64) -> Millis {
    Millis(starts_at.0.saturating_sub(doors_open_before_start_s.saturating_mul(1000)))
}

/// What a gate needs of one event to check its codes.
#[derive(Clone, Copy)]
pub struct GateEvent<'a> {
    pub id: &'a str,
    pub key: &'a EventKey,
    pub doors_open_at: Millis,
}

/// The events gates admit to, found by id (a code names its event) or by section (a
/// barcode's ticket id names its section).
pub trait GateEvents {
    fn by_id(&self, event: &str) -> Option<GateEvent<'_>>;
    fn by_section(&self, section: SectionKey) -> Option<GateEvent<'_>>;
}

/// One scan as the gate reported it.
#[derive(Clone, Copy, Debug)]
pub struct ScanContext<'a> {
    /// The event the gate admits to, if it said.
    pub gate_event: Option<&'a str>,
    /// When it was scanned (an offline gate's time, or now).
    pub scanned_at: Millis,
}

/// A scan refused before any section saw it, and the event its audit entry names (the
/// ticket's when known, else the gate's, else none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub outcome: ScanOutcome,
    pub event: String,
}

/// A genuine ticket, for the section that sold it to decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedTicket {
    pub section: SectionKey,
    pub order: OrderNumber,
    pub index: u16,
    pub version: u16,
}

/// Checks `text` (a code or a printed barcode) as far as can be done without ticket
/// state: refused here, a scan never reaches a section.
pub fn check(text: &str, context: ScanContext<'_>, events: &impl GateEvents) -> Result<ScannedTicket, Refusal> {
    let refuse = |outcome: ScanOutcome, event: &str| Refusal { outcome, event: event.to_string() };
    let gate_event = context.gate_event.unwrap_or_default();
    if text.len() > CODE_TEXT_BYTES_MAX {
        return Err(refuse(ScanOutcome::Invalid, gate_event));
    }
    let (event, ticket) = match Barcode::parse(text) {
        Some(barcode) => {
            let event =
                events.by_section(barcode.ticket.order.section).ok_or(refuse(ScanOutcome::Invalid, gate_event))?;
            if !barcode.is_genuine(event.key, event.id) {
                return Err(refuse(ScanOutcome::Invalid, event.id));
            }
            let ticket = barcode.ticket;
            let scanned = ScannedTicket {
                section: ticket.order.section,
                order: ticket.order.number,
                index: ticket.index,
                version: barcode.version,
            };
            (event, scanned)
        }
        None => {
            let claim = code::read_claim(text).map_err(|_| refuse(ScanOutcome::Invalid, gate_event))?;
            let event = events.by_id(&claim.event).ok_or(refuse(ScanOutcome::Invalid, gate_event))?;
            // The server holds the signing key, and Ed25519 signatures are deterministic:
            // the code is genuine iff it is exactly the code the server would issue for its
            // claim. Signing costs about half of verifying (fixed-base multiplication),
            // which is most of a scan's CPU; gates without the key verify instead.
            let genuine =
                event.key.sign(&claim).is_ok_and(|issued| constant_time_eq(issued.as_bytes(), text.as_bytes()));
            let section = SectionKey(claim.section_key);
            let in_event = events.by_section(section).is_some_and(|owner| owner.id == event.id);
            if !genuine || !in_event {
                return Err(refuse(ScanOutcome::Invalid, &claim.event));
            }
            (event, ScannedTicket { section, order: claim.order, index: claim.index, version: claim.version })
        }
    };
    if context.gate_event.is_some_and(|gate_event| gate_event != event.id) {
        return Err(refuse(ScanOutcome::WrongEvent, event.id));
    }
    if context.scanned_at < event.doors_open_at {
        return Err(refuse(ScanOutcome::NotYetValid, event.id));
    }
    Ok(ticket)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{OrderId, TicketId};
    use crate::tickets::code::{Place, TicketClaim};

    const DOORS: Millis = Millis(1_000_000);

    struct Events {
        key: EventKey,
    }

    impl GateEvents for Events {
        fn by_id(&self, event: &str) -> Option<GateEvent<'_>> {
            (event == "gig").then_some(GateEvent { id: "gig", key: &self.key, doors_open_at: DOORS })
        }

        fn by_section(&self, section: SectionKey) -> Option<GateEvent<'_>> {
            (section.0 == 4).then_some(GateEvent { id: "gig", key: &self.key, doors_open_at: DOORS })
        }
    }

    fn claim(section_key: u32) -> TicketClaim {
        TicketClaim {
            event: "gig".to_string(),
            section_key,
            order: OrderNumber(9),
            index: 1,
            version: 2,
            place: Place::Seat("A-1".to_string()),
        }
    }

    /// The outcome name of checking `text`, or `ok`.
    fn check_name(events: &Events, text: &str, gate_event: Option<&str>, at: Millis) -> (String, String) {
        match check(text, ScanContext { gate_event, scanned_at: at }, events) {
            Ok(ticket) => {
                assert_eq!(
                    ticket,
                    ScannedTicket { section: SectionKey(4), order: OrderNumber(9), index: 1, version: 2 }
                );
                ("ok".to_string(), String::new())
            }
            Err(refusal) => (refusal.outcome.as_str().to_string(), refusal.event),
        }
    }

    #[test]
    fn scans_are_decided_before_any_state_where_they_can_be() {
        let events = Events { key: EventKey::from_seed([5; 32]) };
        let other_key = EventKey::from_seed([6; 32]);
        let code = events.key.sign(&claim(4)).expect("valid");
        let ticket = TicketId { order: OrderId { section: SectionKey(4), number: OrderNumber(9) }, index: 1 };
        let barcode = Barcode::issue(&events.key, "gig", ticket, 2).text();
        let open = DOORS;
        let cases = [
            (code.clone(), None, open, ("ok", "")),
            (code.clone(), Some("gig"), open, ("ok", "")),
            (barcode.clone(), Some("gig"), open, ("ok", "")),
            (code.clone(), Some("other"), open, ("wrong_event", "gig")),
            (barcode.clone(), None, Millis(DOORS.0 - 1), ("not_yet_valid", "gig")),
            (code.clone(), None, Millis(DOORS.0 - 1), ("not_yet_valid", "gig")),
            (other_key.sign(&claim(4)).expect("valid"), None, open, ("invalid", "gig")),
            (events.key.sign(&claim(5)).expect("valid"), None, open, ("invalid", "gig")),
            (Barcode::issue(&other_key, "gig", ticket, 2).text(), None, open, ("invalid", "gig")),
            (barcode.replace("t4-", "t5-"), Some("mine"), open, ("invalid", "mine")),
            ("HK1.garbage".to_string(), Some("mine"), open, ("invalid", "mine")),
            ("x".repeat(CODE_TEXT_BYTES_MAX + 1), None, open, ("invalid", "")),
        ];
        for (text, gate_event, at, (name, event)) in cases {
            assert_eq!(check_name(&events, &text, gate_event, at), (name.to_string(), event.to_string()), "{text}");
        }
    }

    #[test]
    fn outcome_names_are_the_vocabulary() {
        let admission = AdmissionRecord { at_ms: 1, gate: "g".to_string(), scan_id: "s".to_string() };
        let outcomes = [
            ScanOutcome::Admitted(admission.clone()),
            ScanOutcome::AlreadyAdmitted(admission),
            ScanOutcome::Revoked { current_version: 1 },
            ScanOutcome::Cancelled,
            ScanOutcome::Invalid,
            ScanOutcome::WrongEvent,
            ScanOutcome::NotYetValid,
        ];
        let names: Vec<&str> = outcomes.iter().map(ScanOutcome::as_str).collect();
        assert_eq!(names, ScanOutcome::NAMES);
        let with_ticket: Vec<bool> = outcomes.iter().map(ScanOutcome::names_ticket).collect();
        assert_eq!(with_ticket, [true, true, true, true, false, false, false]);
    }

    #[test]
    fn doors_open_before_the_start() {
        assert_eq!(doors_open_at(Millis(10_000), 3), Millis(7_000));
        assert_eq!(doors_open_at(Millis(10_000), u64::MAX), Millis(0));
    }
}
