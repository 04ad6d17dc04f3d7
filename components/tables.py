"""Table helpers shared by the screens."""

from __future__ import annotations


def row_actions_slot(
    buttons: list[tuple[str, str, str]], *, field: str = "id", arg: str = "id", show: str = "true"
) -> str:
    """The `body-cell-actions` slot of a table: one round icon button per (action, icon, label), each
    emitting `row-action` with `{action, <arg>: row.<field>}` for the page's handler. An icon that
    starts with ":" is a JavaScript expression on the row (`:props.row.disabled ? 'a' : 'b'`); `show`
    is a JavaScript condition that hides every button of a row."""
    inner = "".join(
        '<q-btn flat dense round size="sm" '
        + (f':icon="{icon[1:]}" ' if icon.startswith(":") else f'icon="{icon}" ')
        + f'aria-label="{label}" '
        f"@click=\"() => $parent.$emit('row-action', {{action: '{action}', {arg}: props.row.{field}}})\">"
        f"<q-tooltip>{label}</q-tooltip></q-btn>"
        for action, icon, label in buttons
    )
    return f'<q-td key="actions" :props="props" auto-width><template v-if="{show}">{inner}</template></q-td>'
