#!/usr/bin/env python3
"""hakken's Grafana dashboards, built with grafana-foundation-sdk (Grafana 11's schema).

    python3 -m pip install 'grafana-foundation-sdk==1769699379!11.6.0'
    python3 config/sre/dashboards.py            # writes config/sre/dashboards/*.json
    python3 config/sre/dashboards.py --check    # parses them back, prints every query
    python3 config/sre/dashboards.py --out DIR  # writes them to DIR instead

The JSON is committed (Grafana imports it as is: Dashboards > New > Import); this file
is its source. `--check` reads each dashboard back with the SDK (`Dashboard.from_json`,
so it is a dashboard Grafana 11's schema knows) and prints one JSON line per panel
query, with the dashboard variables left in: the live test (api/tests/sre_stack.rs)
fills them in and asks a real Prometheus that every one returns data.

Variables: `event` and `section` (multi-value, "All" = every one), from hakken's
series; `datasource`, the Prometheus to read.
"""

import json
import pathlib
import sys

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, stat, timeseries, table
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = pathlib.Path(__file__).parent / "dashboards"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
EV = 'event=~"$event"'
EVS = 'event=~"$event",section=~"$section"'


def query(expr, legend=None, instant=False, fmt=None):
    target = Dataquery().expr(expr).datasource(DATASOURCE).ref_id("A")
    if legend:
        target = target.legend_format(legend)
    if instant:
        target = target.instant()
    if fmt:
        target = target.format(fmt)
    return target


def series(title, unit, *targets, description=None, width=12, height=8, stack=False):
    panel = timeseries.Panel().title(title).unit(unit).span(width).height(height).datasource(DATASOURCE)
    if description:
        panel = panel.description(description)
    for index, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + index)))
    return panel


def single(title, unit, target, description=None, width=4, height=4):
    panel = stat.Panel().title(title).unit(unit).span(width).height(height).datasource(DATASOURCE)
    if description:
        panel = panel.description(description)
    return panel.with_target(target)


def variables(board, sections=True):
    board = board.with_variable(
        db.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
    ).with_variable(
        db.QueryVariable("event")
        .label("Event")
        .datasource(DATASOURCE)
        .query("label_values(hakken_section_seats, event)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    if sections:
        board = board.with_variable(
            db.QueryVariable("section")
            .label("Section")
            .datasource(DATASOURCE)
            .query('label_values(hakken_section_seats{event=~"$event"}, section)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    return board


def board(uid, title, description):
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["hakken"])
        .refresh("5s")
        .time("now-30m", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )


def on_sale():
    d = variables(board("hakken-on-sale", "hakken / On-sale overview",
                        "The sale at a glance: seats, orders, revenue, the SLOs and what the server refuses."))
    d = d.with_row(db.Row("The sale"))
    d = d.with_panel(single("Seats available", "short", query(f'sum(hakken_section_seats{{{EVS},state="available"}})')))
    d = d.with_panel(single("Seats held", "short", query(f'sum(hakken_section_seats{{{EVS},state="held"}})')))
    d = d.with_panel(single("Seats sold", "short", query(f'sum(hakken_section_seats{{{EVS},state="sold"}})')))
    d = d.with_panel(single("Orders", "short", query(f'sum(hakken_section_orders{{{EVS}}})')))
    d = d.with_panel(single("Revenue (minor units)", "short", query(f'sum(hakken_section_sales_minor{{{EVS}}})'),
                            description="What the live orders were sold for, in cents (or the currency's minor unit)."))
    d = d.with_panel(single("Oversold seats (must be 0)", "short",
                            query(f'clamp_min(max(hakken_section_oversold_seats{{{EVS}}}), 0)'),
                            description="held + sold - capacity, at its worst section: above 0 a seat was sold twice (HakkenOversold pages)."))
    d = d.with_panel(series("Sale operations per second", "ops",
                            query(f'sum by (operation) (rate(hakken_section_operations_total{{{EVS},operation=~"hold|confirm|expire|release|cancel"}}[$__rate_interval]))', "{{operation}}"),
                            query(f'sum by (operation) (rate(hakken_event_operations_total{{{EV},operation=~"checkout|payment_authorized|capture"}}[$__rate_interval]))', "{{operation}}"),
                            description="Seat operations are per section (the section variable narrows them); payment operations are per event."))
    d = d.with_panel(series("Active holds and hold to order conversion", "short",
                            query(f'sum(hakken_section_holds_active{{{EVS}}})', "active holds"),
                            query(f'sum(rate(hakken_section_operations_total{{{EVS},operation="confirm"}}[5m])) / sum(rate(hakken_section_operations_total{{{EVS},operation="hold"}}[5m]))', "orders / holds (5m)")))
    d = d.with_row(db.Row("Waiting room"))
    d = d.with_panel(single("Buyers waiting", "short", query(f'sum(hakken_queue_waiting{{{EV}}})'),
                            description="In the waiting rooms of the selected events; 0 once a room closed sold out."))
    d = d.with_panel(single("Let in from the waiting room", "short", query(f'sum(hakken_queue_admitted_total{{{EV}}})')))
    d = d.with_panel(single("Let in and shopping", "short", query(f'sum(hakken_queue_shopping{{{EV}}})'),
                            description="Buyers let in who hold seats and have not bought or given up yet: the room admits more only while these and those still to hold can leave seats for them."))
    d = d.with_panel(series("Let in, still to come to hold", "short",
                            query(f'sum(hakken_queue_admitted_pending{{{EV}}})', "let in, still to come"),
                            query(f'max(hakken_queue_grace_seconds{{{EV}}})', "grace (s)"),
                            description="Buyers let in who have not asked for seats yet, counted as seats to come until the grace (twice the delay 95% of those who came took) is over; then they no longer hold the room shut, and their access stays valid."))
    d = d.with_panel(single("Told sold out, those ahead still waiting", "short", query(f'sum(hakken_queue_closed_behind{{{EV}}})'),
                            description="At the end of a sale (too little free for one more hold) a room keeps three buyers per seat free or held in line for the seats of holds that end unbought, and tells everyone behind them sold out at once. The line only gets shorter."))
    d = d.with_panel(single("Waiting rooms closed sold out", "short", query(f'sum(hakken_queue_sold_out{{{EV}}})'),
                            description="Rooms that told every waiting buyer sold out: nothing was left free or held, everyone kept in line after a partial close was let in, or a run of buyers let in found nothing that fit what they asked."))
    d = d.with_panel(series("Admissions per second: aimed at and achieved", "ops",
                            query(f'sum by (rate) (hakken_queue_admission_rate{{{EV}}})', "{{rate}}"),
                            query(f'sum(rate(hakken_queue_lapsed_total{{{EV}}}[$__rate_interval]))', "let in, access lapsed"),
                            query(f'sum(rate(hakken_queue_refused_total{{{EV}}}[$__rate_interval]))', "let in, nothing fit"),
                            description="The room aims at a rate between the event's bounds (cut while new holds are about to be refused) and admits only while the buyers let in can leave seats for more; measured is what ETAs are computed from. Buyers whose hold found nothing that fit stop counting at once; a run of them closes the room."))
    d = d.with_panel(series("Waiting room: joins, polls and access checks", "reqps",
                            query(f'sum by (outcome) (rate(hakken_queue_joins_total{{{EV}}}[$__rate_interval]))', "joins {{outcome}}"),
                            query(f'sum(rate(hakken_queue_polls_total{{{EV}}}[$__rate_interval]))', "polls"),
                            query(f'sum by (outcome) (rate(hakken_queue_access_total{{{EV}}}[$__rate_interval]))', "holds' access {{outcome}}"),
                            description="An access check is made by every hold on an event with a waiting room: missing or invalid ones are refused 403 (HakkenQueueAccessRefused)."))
    d = d.with_panel(series("Waiting room: long polls", "short",
                            query(f'sum(hakken_queue_long_polls{{{EV}}})', "held now"),
                            query(f'sum by (outcome) (rate(hakken_queue_long_polls_total{{{EV}}}[$__rate_interval]))', "ended {{outcome}} /s"),
                            description="Buyers near their turn wait on a long poll (GET /v1/queue/{token}?wait_ms=) that answers the moment they are let in or the room closes on them. full: answered at once because the room held as many as it takes (16,384); those buyers learn of their turn a poll interval late (HakkenQueueLongPollsFull)."))
    d = d.with_panel(series("Waiting room: ETA error when let in", "percentunit",
                            query(f'histogram_quantile(0.5, sum by (le) (rate(hakken_queue_eta_error_ratio_bucket{{{EV}}}[$__rate_interval])))', "median"),
                            query(f'histogram_quantile(0.9, sum by (le) (rate(hakken_queue_eta_error_ratio_bucket{{{EV}}}[$__rate_interval])))', "p90"),
                            description="How far the first ETA a buyer was told missed when it was let in, as a share of its wait: a growing error means admissions came slower (or faster) than the measured rate promised."))
    d = d.with_row(db.Row("SLOs"))
    d = d.with_panel(series("Sale availability: failing share", "percentunit",
                            query("hakken:sale_availability:error_ratio_rate30s", "30s"),
                            query("hakken:sale_availability:error_ratio_rate5m", "5m"),
                            query("hakken:sale_availability:error_ratio_rate1h", "1h"),
                            description="SLO 99.9%: budget 0.1%. Pages at 1.44% over 5m and 1h, or over 30s and 5m during an on-sale."))
    d = d.with_panel(series("Holds over 250 ms: share", "percentunit",
                            query("hakken:hold_latency:slow_ratio_rate30s", "30s"),
                            query("hakken:hold_latency:slow_ratio_rate5m", "5m"),
                            query("hakken:hold_latency:slow_ratio_rate1h", "1h"),
                            description="SLO 99% of holds within 250 ms: budget 1%."))
    d = d.with_row(db.Row("Requests (RED)"))
    d = d.with_panel(series("Requests per second by route", "reqps",
                            query('sum by (route, method) (rate(hakken_http_requests_total[$__rate_interval]))', "{{method}} {{route}}")))
    d = d.with_panel(series("Errors (4xx, 5xx) and refusals per second", "reqps",
                            query('sum by (route, status) (rate(hakken_http_requests_total{status=~"4..|5.."}[$__rate_interval]))', "{{status}} {{route}}"),
                            query('sum by (reason) (rate(hakken_http_rejections_total[$__rate_interval]))', "refused: {{reason}}")))
    d = d.with_panel(series("p99 latency by route", "s",
                            query('histogram_quantile(0.99, sum by (route, le) (rate(hakken_http_request_duration_seconds_bucket[$__rate_interval])))', "{{route}}")))
    d = d.with_panel(series("In flight and the adaptive limit", "short",
                            query("sum(hakken_http_requests_in_flight)", "in flight"),
                            query("sum(hakken_http_concurrency_limit)", "limit"),
                            query("sum(hakken_http_connections_open)", "connections")))
    return d


def sections():
    d = variables(board("hakken-sections", "hakken / Sections",
                        "Where the seats are going: each section and category, and each section's actor."))
    d = d.with_panel(heatmap.Panel().title("Sold share per section").span(24).height(10).datasource(DATASOURCE)
                     .description("Seats sold out of capacity, one row per section.")
                     .with_target(query(f'sum by (section) (hakken_section_seats{{{EVS},state="sold"}}) / sum by (section) (hakken_section_capacity_seats{{{EVS}}})', "{{section}}")))
    d = d.with_panel(table.Panel().title("Seats per section and category").span(24).height(10).datasource(DATASOURCE)
                     .with_target(query(f'sum by (section, category, state) (hakken_category_seats{{{EVS}}})', instant=True, fmt=PromQueryFormat.TABLE)))
    d = d.with_panel(series("Available seats per section", "short",
                            query(f'sum by (section) (hakken_section_seats{{{EVS},state="available"}})', "{{section}}")))
    d = d.with_panel(series("Holds per second per section", "ops",
                            query(f'sum by (section) (rate(hakken_section_operations_total{{{EVS},operation="hold"}}[$__rate_interval]))', "{{section}}")))
    d = d.with_panel(series("Actor busy share per section", "percentunit",
                            query(f'sum by (section) (rate(hakken_section_busy_seconds{{{EVS}}}[$__rate_interval]))', "{{section}}"),
                            description="The share of a core each section's actor spends on calls: near 1, the section is the bottleneck."))
    d = d.with_panel(series("Actor call time p50 / p99", "s",
                            query(f'histogram_quantile(0.5, sum by (le) (rate(hakken_section_call_seconds_bucket{{{EV}}}[$__rate_interval])))', "p50"),
                            query(f'histogram_quantile(0.99, sum by (le) (rate(hakken_section_call_seconds_bucket{{{EV}}}[$__rate_interval])))', "p99"),
                            description="Every call's whole turn in an actor, best-available searches included, over the event's sections."))
    d = d.with_panel(series("Best-available search p50 / p99", "s",
                            query(f'histogram_quantile(0.5, sum by (le) (rate(hakken_best_available_search_seconds_bucket{{{EV}}}[$__rate_interval])))', "p50"),
                            query(f'histogram_quantile(0.99, sum by (le) (rate(hakken_best_available_search_seconds_bucket{{{EV}}}[$__rate_interval])))', "p99"),
                            description="Choosing and holding the best seats for a request (no seat map given)."))
    d = d.with_panel(series("Mailbox depth per section, and the wait", "short",
                            query(f'max by (section) (hakken_section_mailbox_depth{{{EVS}}})', "{{section}} depth"),
                            query(f'histogram_quantile(0.99, sum by (le) (rate(hakken_section_queue_sojourn_seconds_bucket{{{EV}}}[$__rate_interval]))) * 1000', "p99 wait (ms)")))
    return d


def payments():
    d = variables(board("hakken-payments", "hakken / Payments and notifications",
                        "The money path (PSP calls, webhooks, what is owed) and the outbox of emails and webhooks."), sections=False)
    d = d.with_row(db.Row("Payments"))
    d = d.with_panel(series("Payments per second", "ops",
                            query(f'sum by (operation) (rate(hakken_event_operations_total{{{EV},operation=~"checkout|payment_authorized|capture|void|refund"}}[$__rate_interval]))', "{{operation}}")))
    d = d.with_panel(series("PSP calls by outcome", "reqps",
                            query('sum by (operation, outcome) (rate(hakken_psp_requests_total[$__rate_interval]))', "{{operation}} {{outcome}}")))
    d = d.with_panel(series("PSP call p99", "s",
                            query('histogram_quantile(0.99, sum by (operation, le) (rate(hakken_psp_request_seconds_bucket[$__rate_interval])))', "{{operation}}")))
    d = d.with_panel(series("Webhooks by outcome, and their lag", "short",
                            query('sum by (outcome) (rate(hakken_payment_webhooks_total[$__rate_interval]))', "{{outcome}} /s"),
                            query('histogram_quantile(0.9, sum by (le) (rate(hakken_payment_webhook_lag_seconds_bucket[5m])))', "lag p90 (s)")))
    d = d.with_panel(series("Payments in progress", "short",
                            query('sum by (due) (hakken_payments_due)', "due: {{due}}"),
                            query('sum(hakken_payment_waiters)', "buyers waiting"),
                            query('sum(hakken_http_requests_awaiting_psp)', "requests awaiting the PSP")))
    d = d.with_panel(single("Reconciliation mismatches", "short", query('max(hakken_payments_reconcile_mismatches)'), width=6))
    d = d.with_row(db.Row("Notifications"))
    d = d.with_panel(series("Outbox depth and oldest age", "short",
                            query('sum by (state) (hakken_notification_outbox_entries)', "{{state}} entries"),
                            query('max by (channel) (hakken_notification_outbox_oldest_age_seconds)', "{{channel}} oldest (s)")))
    d = d.with_panel(series("Delivery attempts by outcome", "ops",
                            query('sum by (channel, outcome) (rate(hakken_notification_attempts_total[$__rate_interval]))', "{{channel}} {{outcome}}"),
                            query('sum by (channel) (rate(hakken_notification_dead_letters_total[$__rate_interval]))', "{{channel}} given up")))
    return d


def gates():
    d = variables(board("hakken-gates", "hakken / Gates",
                        "Entry: scans by result, tickets used twice, and the gate's requests."), sections=False)
    d = d.with_panel(series("Scans per second by result", "ops",
                            query('sum by (result) (rate(hakken_gate_scans_total[$__rate_interval]))', "{{result}}")))
    d = d.with_panel(series("Duplicate scans (a ticket used twice)", "percentunit",
                            query('sum(rate(hakken_gate_scans_total{result="already_admitted"}[5m])) / sum(rate(hakken_gate_scans_total[5m]))', "already admitted")))
    d = d.with_panel(single("Admitted", "short", query(f'sum(increase(hakken_section_operations_total{{{EV},operation="admit"}}[$__range]))'), width=6))
    d = d.with_panel(series("Scan request p99", "s",
                            query('histogram_quantile(0.99, sum by (route, le) (rate(hakken_http_request_duration_seconds_bucket{route=~"/v1/scan.*"}[$__rate_interval])))', "{{route}}")))
    return d


def engine():
    d = variables(board("hakken-engine", "hakken / Engine internals",
                        "Group commit, fsync, the WAL writer's queue, recovery and readiness."), sections=False)
    d = d.with_panel(series("WAL group commit: write + fsync p50 / p99", "s",
                            query('histogram_quantile(0.5, sum by (le) (rate(hakken_wal_write_seconds_bucket[$__rate_interval])))', "p50"),
                            query('hakken:wal_write_seconds:p99_1m', "p99 (1m)")))
    d = d.with_panel(series("Records per group", "short",
                            query('hakken:wal_group_records:mean_1m', "mean"),
                            query('histogram_quantile(0.99, sum by (le) (rate(hakken_wal_group_records_bucket[$__rate_interval])))', "p99")))
    d = d.with_panel(series("WAL bytes per second", "Bps",
                            query('sum(rate(hakken_wal_bytes_total[$__rate_interval]))', "written")))
    d = d.with_panel(series("Failures: WAL writes, full queue, section shedding", "short",
                            query('sum(increase(hakken_wal_write_failures_total[$__rate_interval]))', "write failures"),
                            query('sum(rate(hakken_wal_queue_full_total[$__rate_interval]))', "queue full /s"),
                            query(f'sum by (reason) (rate(hakken_section_shed_total{{{EV}}}[$__rate_interval]))', "shed: {{reason}} /s")))
    d = d.with_row(db.Row("RocksDB and the disk"))
    d = d.with_panel(series("RocksDB write stalls", "short",
                            query("max(hakken_store_write_stopped)", "writes stopped"),
                            query("max(hakken_store_write_delayed)", "writes slowed down"),
                            query("max(hakken_store_running_compactions)", "compactions running"),
                            description="A stop holds every acknowledgement until compaction catches up."))
    d = d.with_panel(series("RocksDB: compaction debt, memtables, SST files", "bytes",
                            query("sum(hakken_store_pending_compaction_bytes)", "compaction debt"),
                            query("sum(hakken_store_memtable_bytes)", "memtables"),
                            query("sum(hakken_store_sst_bytes)", "SST files")))
    d = d.with_panel(series("Store disk free", "percentunit",
                            query("min by (instance) (hakken_store_disk_free_bytes / hakken_store_disk_size_bytes)", "{{instance}}")))
    d = d.with_panel(single("Ready", "bool", query("min(hakken_ready)"), width=6))
    d = d.with_panel(single("Last recovery", "s", query("max(hakken_recovery_seconds)"), width=6))
    return d


def cluster():
    d = variables(board("hakken-cluster", "hakken / Cluster",
                        "Cluster mode: which node owns each event, the log on NATS JetStream (the durability "
                        "point), standbys' lag, takeovers and step-downs."), sections=False)
    d = d.with_panel(series("Cluster: event owners", "short",
                            query(f'max by (event, instance) (hakken_cluster_owner{{{EV}}})', "{{event}} on {{instance}}"),
                            description="1 on the node that owns the event now; every event should have exactly one."))
    d = d.with_panel(series("Cluster: standby lag", "short",
                            query(f'max by (event, instance) (hakken_cluster_standby_lag_messages{{{EV}}})', "{{event}} on {{instance}}"),
                            description="How far each standby's store is behind the event's log, in stream "
                                        "sequence numbers; a takeover must read that much first."))
    d = d.with_panel(series("Cluster: log append p50 / p99", "s",
                            query('histogram_quantile(0.5, sum by (le) (rate(hakken_cluster_log_append_seconds_bucket[$__rate_interval])))', "p50"),
                            query('histogram_quantile(0.99, sum by (le) (rate(hakken_cluster_log_append_seconds_bucket[$__rate_interval])))', "p99"),
                            description="From an append to its quorum acknowledgement: it replaces the local fsync "
                                        "as the point a sale is durable."))
    d = d.with_panel(series("Cluster: log appends and lease writes by outcome", "short",
                            query('sum by (outcome) (rate(hakken_cluster_log_appends_total[$__rate_interval]))', "appends {{outcome}} /s"),
                            query('sum by (outcome) (rate(hakken_cluster_lease_writes_total[$__rate_interval]))', "leases {{outcome}} /s")))
    d = d.with_panel(series("Cluster: takeovers, step-downs and redirects", "short",
                            query('sum(increase(hakken_cluster_takeovers_total[$__rate_interval]))', "takeovers"),
                            query('sum by (reason) (increase(hakken_cluster_step_downs_total[$__rate_interval]))', "step-downs: {{reason}}"),
                            query('sum(rate(hakken_cluster_redirects_total[$__rate_interval]))', "redirects /s")))
    d = d.with_panel(series("Cluster: takeover time p99", "s",
                            query('histogram_quantile(0.99, sum by (le) (increase(hakken_cluster_takeover_seconds_bucket[$__range])))', "p99 (range)"),
                            description="A takeover's fence, catch-up and rebuild; the lease ttl comes before it."))
    return d


DASHBOARDS = {"on-sale": on_sale, "sections": sections, "payments": payments, "gates": gates, "engine": engine,
              "cluster": cluster}


def write(out):
    out.mkdir(exist_ok=True)
    encoder = JSONEncoder(sort_keys=True, indent=2)
    for name, build in DASHBOARDS.items():
        built = build().build()
        for number, panel in enumerate(built.panels, start=1):
            panel.id_val = number
        (out / f"{name}.json").write_text(encoder.encode(built) + "\n")


def check():
    """Parses every committed dashboard back; prints its queries (one JSON object a line)."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    for name in DASHBOARDS:
        raw = json.loads((OUT / f"{name}.json").read_text())
        parsed = model.Dashboard.from_json(raw)
        assert parsed.title == raw["title"] and parsed.panels, name
        panels = [panel for panel in parsed.panels if isinstance(panel, model.Panel)]
        assert panels, f"{name}: no panels"
        for panel in panels:
            assert panel.targets, f"{name}: panel {panel.title!r} has no query"
            for target in panel.targets:
                print(json.dumps({"dashboard": name, "panel": panel.title, "expr": target.expr}))


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check()
    elif sys.argv[1:2] == ["--out"] and len(sys.argv) == 3:
        write(pathlib.Path(sys.argv[2]))
    elif not sys.argv[1:]:
        write(OUT)
    else:
        sys.exit("usage: dashboards.py [--check | --out DIR]")
