"""Invoice and credit-note PDFs (reportlab): header, account, the CDRs, VAT by rate, totals.

Paragraph text is reportlab markup, so every name or reason people typed goes through
``escape`` ("Fleet <B> Nord" must not turn bold, nor break the document).
"""

from __future__ import annotations

from io import BytesIO
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.choices import InvoiceStatus
from evcharge.core.money import round_half_up

_STYLES = getSampleStyleSheet()


def _build(title: str, story: list) -> bytes:
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, title=title, author="evcharge", leftMargin=18 * mm, rightMargin=18 * mm
    )
    doc.build(story)
    return buffer.getvalue()


def _money(value, currency: str) -> str:
    """Amounts are stored with 3 decimals; shown in the currency's minor unit."""
    return str(round_half_up(value, currency))


def _para(text: str, style: str = "Normal") -> Paragraph:
    return Paragraph(text, _STYLES[style])


def _cdr_table(header: list[str], rows: list[list[str]]) -> Table:
    # The charger column is fixed (its cells wrap); the others take what their text needs.
    widths = [None, 42 * mm] + [None] * (len(header) - 2)
    table = Table([header, *rows], colWidths=widths, repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef4")),
                ("ALIGN", (4, 1), (-1, -1), "RIGHT"),
                ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey),
            ]
        )
    )
    return table


_CELL = _STYLES["Normal"].clone("cell", fontSize=7.5, leading=9)


def _cdr_cells(cdr) -> list:
    return [
        str(cdr.pk),
        # A Paragraph wraps: identities run to 48 characters, wider than the column.
        Paragraph(escape(f"{cdr.charge_point_identity}#{cdr.connector_id}"), _CELL),
        f"{cdr.started_at:%Y-%m-%d %H:%M}",
        f"{cdr.stopped_at:%Y-%m-%d %H:%M}",
        f"{cdr.total_energy_kwh.normalize():f}",
    ]


_CDR_HEADER = ["CDR", "Charger", "Start (UTC)", "Stop (UTC)", "kWh"]


def _summary(vat_breakdown: list[dict], totals: list[list[str]], bold_rows: tuple[int, ...]) -> Table:
    """The VAT lines by rate, then ``totals`` (label, "", amount); ``bold_rows`` index ``totals``."""
    rows = [["VAT rate", "Base", "VAT"]]
    rows += [[f"{v['rate']} %", v["base"], v["amount"]] for v in vat_breakdown]
    first_total = len(rows)
    rows += totals
    style = [
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
        ("LINEABOVE", (0, first_total), (-1, first_total), 0.5, colors.grey),
    ]
    style += [("FONTNAME", (0, first_total + i), (-1, first_total + i), "Helvetica-Bold") for i in bold_rows]
    summary = Table(rows, hAlign="RIGHT")
    summary.setStyle(TableStyle(style))
    return summary


def render_invoice(*, invoice, lines) -> bytes:
    """The PDF bytes of an issued invoice. ``lines`` are its InvoiceLines with their CDRs."""
    account = invoice.account
    cur = invoice.currency
    # Rendered again after a void (the admin's action), the PDF must not look payable.
    state = "" if invoice.status == InvoiceStatus.OPEN else f" ({invoice.get_status_display().upper()})"
    story = [
        _para(f"Invoice {invoice.number}{state}", "Title"),
        _para(f"Billed to: {escape(account.name)}"),
        _para(
            f"Period: {invoice.period_start:%Y-%m-%d %H:%M} - {invoice.period_end:%Y-%m-%d %H:%M} UTC "
            f"({account.get_period_display().lower()}, {escape(account.time_zone)})"
        ),
        _para(f"Issued: {invoice.issued_at:%Y-%m-%d %H:%M} UTC"),
        Spacer(1, 6 * mm),
    ]
    header = [*_CDR_HEADER, f"Excl. VAT ({cur})", f"VAT ({cur})", f"Total ({cur})"]
    rows = [
        [
            *_cdr_cells(line.cdr),
            _money(line.total_excl_vat, cur),
            _money(line.total_vat, cur),
            _money(line.total_incl_vat, cur),
        ]
        for line in lines
    ]
    totals = [
        ["Total excl. VAT", "", f"{_money(invoice.total_excl_vat, cur)} {cur}"],
        ["VAT", "", f"{_money(invoice.total_vat, cur)} {cur}"],
        ["Total incl. VAT", "", f"{_money(invoice.total_incl_vat, cur)} {cur}"],
    ]
    bold = [2]
    if invoice.amount_credited:  # credit notes on its CDRs made before it was issued
        totals += [
            ["Credit notes", "", f"-{_money(invoice.amount_credited, cur)} {cur}"],
            ["Amount due", "", f"{_money(invoice.amount_due, cur)} {cur}"],
        ]
        bold.append(4)
    summary = _summary(invoice.vat_breakdown, totals, tuple(bold))
    story += [_cdr_table(header, rows), Spacer(1, 6 * mm), summary]
    return _build(invoice.number, story)


def render_credit_note(*, note) -> bytes:
    """The PDF bytes of a credit note (``note.cdr`` with its account; ``note.invoice`` or None)."""
    cdr = note.cdr
    cur = note.currency
    invoice = note.invoice
    if invoice is None or invoice.issued_at is None:
        corrects = "The CDR is not invoiced yet: this credit is deducted from the invoice it lands on"
    elif invoice.issued_at <= note.created_at:
        corrects = f"Corrects invoice {invoice.number} of {invoice.issued_at:%Y-%m-%d} UTC"
    else:  # the note waited for the CDR's invoice, which was issued with it taken off
        corrects = (
            f"The CDR was not invoiced yet: this credit is deducted on invoice {invoice.number} "
            f"of {invoice.issued_at:%Y-%m-%d} UTC"
        )
    story = [
        _para(f"Credit note {note.number}", "Title"),
        _para(f"Billed to: {escape(cdr.account.name)}"),
        _para(corrects),
        _para(f"Issued: {note.created_at:%Y-%m-%d %H:%M} UTC"),
        _para(f"Reason: {escape(note.reason)}"),
        Spacer(1, 6 * mm),
        _cdr_table(
            [*_CDR_HEADER, f"Charged excl. VAT ({cur})", f"Charged incl. VAT ({cur})"],
            [[*_cdr_cells(cdr), _money(cdr.total_excl_vat, cur), _money(cdr.total_incl_vat, cur)]],
        ),
        Spacer(1, 6 * mm),
        _summary(
            note.vat_breakdown,
            [
                ["Credited excl. VAT", "", f"{_money(note.total_excl_vat, cur)} {cur}"],
                ["VAT credited", "", f"{_money(note.total_vat, cur)} {cur}"],
                ["Credited incl. VAT", "", f"{_money(note.total_incl_vat, cur)} {cur}"],
            ],
            (2,),
        ),
    ]
    return _build(note.number, story)
