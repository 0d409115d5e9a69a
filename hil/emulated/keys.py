"""Keyboard translation for the twin: kvmd's web key names and text -> QEMU qcodes.

PiKVM names keys like the browser's `KeyboardEvent.code` (``KeyA``, ``Enter``, ``F11``);
QEMU's `send-key` wants qcodes (``a``, ``ret``, ``f11``). Text typed through
``/api/hid/print`` is turned into key chords for a US layout, as kvmd does by default.
"""

from __future__ import annotations

from hil.core.errors import HilError

_NAMED = {
    "Enter": "ret",
    "Escape": "esc",
    "Backspace": "backspace",
    "Tab": "tab",
    "Space": "spc",
    "Minus": "minus",
    "Equal": "equal",
    "BracketLeft": "bracket_left",
    "BracketRight": "bracket_right",
    "Backslash": "backslash",
    "Semicolon": "semicolon",
    "Quote": "apostrophe",
    "Backquote": "grave_accent",
    "Comma": "comma",
    "Period": "dot",
    "Slash": "slash",
    "CapsLock": "caps_lock",
    "PrintScreen": "print",
    "ScrollLock": "scroll_lock",
    "Pause": "pause",
    "Insert": "insert",
    "Home": "home",
    "PageUp": "pgup",
    "Delete": "delete",
    "End": "end",
    "PageDown": "pgdn",
    "ArrowRight": "right",
    "ArrowLeft": "left",
    "ArrowDown": "down",
    "ArrowUp": "up",
    "ShiftLeft": "shift",
    "ShiftRight": "shift_r",
    "ControlLeft": "ctrl",
    "ControlRight": "ctrl_r",
    "AltLeft": "alt",
    "AltRight": "alt_r",
    "MetaLeft": "meta_l",
    "MetaRight": "meta_r",
    "ContextMenu": "menu",
    "NumLock": "num_lock",
}

# unshifted character -> qcode, and the character its shifted form produces
_PLAIN = {
    " ": "spc", "\n": "ret", "\t": "tab", "-": "minus", "=": "equal", "[": "bracket_left",
    "]": "bracket_right", "\\": "backslash", ";": "semicolon", "'": "apostrophe",
    "`": "grave_accent", ",": "comma", ".": "dot", "/": "slash",
}
_SHIFTED = {
    "!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8", "(": "9",
    ")": "0", "_": "minus", "+": "equal", "{": "bracket_left", "}": "bracket_right",
    "|": "backslash", ":": "semicolon", '"': "apostrophe", "~": "grave_accent", "<": "comma",
    ">": "dot", "?": "slash",
}


def web_key_to_qcode(key: str) -> str:
    """``KeyA`` -> ``a``, ``Digit1`` -> ``1``, ``F11`` -> ``f11``, ``Enter`` -> ``ret``."""
    if key.startswith("Key") and len(key) == 4 and key[3].isalpha():
        return key[3].lower()
    if key.startswith("Digit") and len(key) == 6 and key[5].isdigit():
        return key[5]
    if key.startswith("F") and key[1:].isdigit() and 1 <= int(key[1:]) <= 24:
        return key.lower()
    if key in _NAMED:
        return _NAMED[key]
    raise HilError(f"unknown key name {key!r}", "use web key names such as KeyA, Enter, F11")


def char_to_chord(ch: str) -> list[str]:
    """The qcodes to hold together to type `ch` on a US keyboard."""
    if ch.isascii() and ch.isalpha():
        return ["shift", ch.lower()] if ch.isupper() else [ch]
    if ch.isascii() and ch.isdigit():
        return [ch]
    if ch in _PLAIN:
        return [_PLAIN[ch]]
    if ch in _SHIFTED:
        return ["shift", _SHIFTED[ch]]
    raise HilError(f"cannot type character {ch!r} on the twin's US keyboard")


def text_to_chords(text: str) -> list[list[str]]:
    """Every character of `text` as a chord; fails before typing anything on a bad one."""
    return [char_to_chord(c) for c in text if c != "\r"]
