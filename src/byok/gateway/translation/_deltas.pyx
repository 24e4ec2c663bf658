# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""The commonest stream event of each API, a text delta, translated in C.

A translated stream is mostly text deltas, and the Python translators spend
~16,000 CPU instructions on each (reading the event, decoding its JSON,
writing the client's); these functions spend a few thousand.  Each takes an
upstream chunk that is nothing but whole text-delta events, checks every
byte the Python path would check, and writes the client's events: the text's
JSON string is copied as it came (valid JSON, valid UTF-8).  Any other chunk,
or anything out of the ordinary in one (whitespace where the Python path
takes none, an event cut in two, a field the translator would read), gives
None, and the caller's Python path translates it: that path is the reference,
and tests/gateway/translation/test_compiled_deltas.py holds these to it.

The caller knows what this cannot: that the stream is at a point where a text
delta is just more text (its head is written, a text block is open).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

ctypedef const unsigned char* text_t

cdef enum:
    MOST_EVENTS = 64  # in one chunk; more (never seen) take the Python path
    MOST_DEPTH = 32  # of a skipped value's nesting; deeper takes the Python path

cdef struct Span:
    Py_ssize_t start
    Py_ssize_t end


# ---- JSON, as strictly as msgspec reads it ------------------------------------------


cdef inline Py_ssize_t _space(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    while at < end and (s[at] == 32 or s[at] == 9 or s[at] == 10 or s[at] == 13):
        at += 1
    return at


cdef inline int _hex(unsigned char c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef inline bint _tail(text_t s, Py_ssize_t at, int count) noexcept nogil:
    """`count` UTF-8 continuation bytes at `at` (their room is checked by the caller)."""
    cdef int n
    for n in range(count):
        if s[at + n] & 0xC0 != 0x80:
            return False
    return True


cdef inline int _unit(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    """The UTF-16 unit of the escape \\uXXXX at `at`, or -1."""
    cdef int n, digit
    cdef int unit = 0
    if at + 6 > end or s[at] != 92 or s[at + 1] != 117:
        return -1
    for n in range(4):
        digit = _hex(s[at + 2 + n])
        if digit < 0:
            return -1
        unit = unit * 16 + digit
    return unit


cdef Py_ssize_t _string(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    """s[at] is a quote: the index after the JSON string it opens, or -1 if
    it is not one (bad escape, control character, invalid UTF-8, a lone
    surrogate escape: the last is left to the Python path to judge)."""
    cdef unsigned char c, second
    cdef int unit
    at += 1
    while at < end:
        c = s[at]
        if c == 34:  # "
            return at + 1
        if c == 92:  # \
            if at + 1 >= end:
                return -1
            c = s[at + 1]
            if c == 117:  # u
                unit = _unit(s, at, end)
                if 0xD800 <= unit <= 0xDBFF:  # a pair's first: its second follows
                    at += 6
                    unit = _unit(s, at, end)
                    if not 0xDC00 <= unit <= 0xDFFF:
                        return -1
                elif unit < 0 or 0xDC00 <= unit <= 0xDFFF:
                    return -1
                at += 6
            elif c == 34 or c == 92 or c == 47 or c == 98 or c == 102 or c == 110 or c == 114 or c == 116:
                at += 2
            else:
                return -1
        elif c < 0x20:
            return -1
        elif c < 0x80:
            at += 1
        elif 0xC2 <= c <= 0xDF:
            if at + 2 > end or not _tail(s, at + 1, 1):
                return -1
            at += 2
        elif 0xE0 <= c <= 0xEF:
            if at + 3 > end or not _tail(s, at + 1, 2):
                return -1
            second = s[at + 1]
            if (c == 0xE0 and second < 0xA0) or (c == 0xED and second > 0x9F):
                return -1  # overlong, or a surrogate
            at += 3
        elif 0xF0 <= c <= 0xF4:
            if at + 4 > end or not _tail(s, at + 1, 3):
                return -1
            second = s[at + 1]
            if (c == 0xF0 and second < 0x90) or (c == 0xF4 and second > 0x8F):
                return -1  # overlong, or above U+10FFFF
            at += 4
        else:
            return -1
    return -1


cdef inline Py_ssize_t _digits(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    while at < end and 48 <= s[at] <= 57:
        at += 1
    return at


cdef Py_ssize_t _number(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    """The index after the JSON number at `at`, or -1."""
    cdef Py_ssize_t start
    if at < end and s[at] == 45:  # -
        at += 1
    if at >= end:
        return -1
    if s[at] == 48:  # a leading zero stands alone
        at += 1
    elif 49 <= s[at] <= 57:
        at = _digits(s, at, end)
    else:
        return -1
    if at < end and s[at] == 46:  # .
        start = at + 1
        at = _digits(s, start, end)
        if at == start:
            return -1
    if at < end and (s[at] == 101 or s[at] == 69):  # e E
        at += 1
        if at < end and (s[at] == 43 or s[at] == 45):
            at += 1
        start = at
        at = _digits(s, start, end)
        if at == start:
            return -1
    return at


cdef inline Py_ssize_t _word(text_t s, Py_ssize_t at, Py_ssize_t end, const char* word, Py_ssize_t size) noexcept nogil:
    if at + size <= end and memcmp(s + at, word, size) == 0:
        return at + size
    return -1


cdef Py_ssize_t _value(text_t s, Py_ssize_t at, Py_ssize_t end, int depth) noexcept nogil:
    """The index after the JSON value at `at` (no space before it), or -1."""
    cdef unsigned char c
    if at >= end or depth > MOST_DEPTH:
        return -1
    c = s[at]
    if c == 34:
        return _string(s, at, end)
    if c == 123 or c == 91:  # { [
        return _container(s, at, end, depth + 1)
    if c == 116:
        return _word(s, at, end, b"true", 4)
    if c == 102:
        return _word(s, at, end, b"false", 5)
    if c == 110:
        return _word(s, at, end, b"null", 4)
    return _number(s, at, end)


cdef Py_ssize_t _container(text_t s, Py_ssize_t at, Py_ssize_t end, int depth) noexcept nogil:
    cdef bint is_object = s[at] == 123
    cdef unsigned char close = 125 if is_object else 93
    at = _space(s, at + 1, end)
    if at < end and s[at] == close:
        return at + 1
    while True:
        if is_object:
            if at >= end or s[at] != 34:
                return -1
            at = _string(s, at, end)
            if at < 0:
                return -1
            at = _space(s, at, end)
            if at >= end or s[at] != 58:  # :
                return -1
            at = _space(s, at + 1, end)
        at = _value(s, at, end, depth)
        if at < 0:
            return -1
        at = _space(s, at, end)
        if at >= end:
            return -1
        if s[at] == close:
            return at + 1
        if s[at] != 44:  # ,
            return -1
        at = _space(s, at + 1, end)


# ---- an object's members, one at a time ---------------------------------------------

cdef struct Member:
    Py_ssize_t key  # the key's first byte, after its quote
    Py_ssize_t key_size
    Py_ssize_t value  # the value's first byte; after the object, once it closed


cdef Py_ssize_t _next_member(
    text_t s, Py_ssize_t at, Py_ssize_t end, bint first, Member* member
) noexcept nogil:
    """`at` is after an object's { (`first`) or after a member's value: the
    next member into `member`, returning where its value starts; 0 when the
    object closed (member.value is then the index after its }); -1 if what
    follows is not JSON."""
    cdef Py_ssize_t key_end
    at = _space(s, at, end)
    if at >= end:
        return -1
    if s[at] == 125:  # }
        member.value = at + 1
        return 0
    if not first:
        if s[at] != 44:  # ,
            return -1
        at = _space(s, at + 1, end)
        if at >= end:
            return -1
    if s[at] != 34:
        return -1
    key_end = _string(s, at, end)
    if key_end < 0:
        return -1
    member.key = at + 1
    member.key_size = key_end - at - 2
    if memchr(s + member.key, 92, member.key_size) != NULL:
        return -1  # an escape in a key: msgspec reads the key it spells, left to it
    at = _space(s, key_end, end)
    if at >= end or s[at] != 58:  # :
        return -1
    at = _space(s, at + 1, end)
    if at >= end:
        return -1
    member.value = at
    return at


cdef inline bint _is(text_t s, Member* member, const char* key, Py_ssize_t size) noexcept nogil:
    return member.key_size == size and memcmp(s + member.key, key, size) == 0


cdef inline Py_ssize_t _null(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    return _word(s, at, end, b"null", 4)


cdef inline Py_ssize_t _object(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    """The index after the { of the object at `at`, or -1."""
    return at + 1 if at < end and s[at] == 123 else -1


cdef inline Py_ssize_t _string_or_null(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    return _string(s, at, end) if s[at] == 34 else _null(s, at, end)


# ---- OpenAI's chunk of text: {"choices":[{"index":0,"delta":{"content":"..."}}], ...} --

# The fields of each object that the Python path reads (O.Chunk, O.ChunkChoice,
# O.AnswerMessage) must hold what makes the chunk "more of the text": text in
# delta.content, nothing in the fields that would open another block, no
# finish_reason, no usage, no error, choice 0 alone.  Every other member is
# skipped, as msgspec skips what a Struct does not name, after being read as JSON.

cdef Py_ssize_t _delta(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept nogil:
    cdef Member member
    cdef bint first = True
    text.start = -1
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value if text.start >= 0 else -1
        first = False
        if at < 0:
            return -1
        if _is(s, &member, b"content", 7):
            if text.start >= 0 or s[at] != 34:
                return -1
            text.start = at
            at = _string(s, at, end)
            text.end = at
            if at - text.start == 2:  # an empty text says nothing more
                return -1
        elif _is(s, &member, b"role", 4):
            at = _string_or_null(s, at, end)
        elif (
            _is(s, &member, b"refusal", 7)
            or _is(s, &member, b"tool_calls", 10)
            or _is(s, &member, b"reasoning_content", 17)
        ):
            at = _null(s, at, end)
        else:
            at = _value(s, at, end, 3)
    return -1


cdef Py_ssize_t _choice(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept nogil:
    cdef Member member
    cdef bint first = True
    cdef bint seen_delta = False
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value if seen_delta else -1
        first = False
        if at < 0:
            return -1
        if _is(s, &member, b"delta", 5):
            if seen_delta:
                return -1
            seen_delta = True
            at = _delta(s, at, end, text)
        elif _is(s, &member, b"index", 5):
            # the int 0 and nothing else (not 0.0, not 00): choice 0
            at = _number(s, at, end)
            if at != member.value + 1 or s[member.value] != 48:
                return -1
        elif _is(s, &member, b"finish_reason", 13):
            at = _null(s, at, end)
        elif _is(s, &member, b"stop_reason", 11):
            at = _string_or_null(s, at, end)
        else:
            at = _value(s, at, end, 2)
    return -1


cdef Py_ssize_t _chunk(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept nogil:
    """The chunk (a JSON object) at `at` when it is more text of choice 0:
    the index after it, its text's JSON string in `text`; else -1."""
    cdef Member member
    cdef bint first = True
    cdef bint seen_choices = False
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value if seen_choices else -1
        first = False
        if at < 0:
            return -1
        if _is(s, &member, b"choices", 7):
            if seen_choices or s[at] != 91:  # [
                return -1
            seen_choices = True
            at = _choice(s, _space(s, at + 1, end), end, text)
            if at < 0:
                return -1
            at = _space(s, at, end)
            if at >= end or s[at] != 93:  # ]: one choice alone
                return -1
            at += 1
        elif _is(s, &member, b"id", 2) or _is(s, &member, b"model", 5):
            at = _string(s, at, end) if s[at] == 34 else -1
        elif _is(s, &member, b"usage", 5):
            at = _null(s, at, end)
        elif _is(s, &member, b"error", 5):
            return -1
        else:
            at = _value(s, at, end, 1)
    return -1


# ---- the chunks' events, and the client's ------------------------------------------


cdef bytes _written(text_t s, Span* texts, Py_ssize_t count, bytes head, bytes tail):
    """Each text between `head` and `tail`, in one bytes object."""
    cdef Py_ssize_t head_size = PyBytes_GET_SIZE(head)
    cdef Py_ssize_t tail_size = PyBytes_GET_SIZE(tail)
    cdef Py_ssize_t size = count * (head_size + tail_size)
    cdef Py_ssize_t n, text_size
    for n in range(count):
        size += texts[n].end - texts[n].start
    out = PyBytes_FromStringAndSize(NULL, size)
    cdef char* to = PyBytes_AS_STRING(out)
    for n in range(count):
        text_size = texts[n].end - texts[n].start
        memcpy(to, PyBytes_AS_STRING(head), head_size)
        to += head_size
        memcpy(to, s + texts[n].start, text_size)
        to += text_size
        memcpy(to, PyBytes_AS_STRING(tail), tail_size)
        to += tail_size
    return out


def text_of_chunks(bytes chunk, bytes head, bytes tail):
    """An OpenAI stream's bytes that are whole ``data: {chunk}`` events, each
    more text of choice 0 and nothing else: each text between `head` and
    `tail`, in one bytes object.  None for any other bytes."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(chunk)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(chunk)
    cdef Py_ssize_t at = 0
    cdef Py_ssize_t line_end
    cdef Py_ssize_t count = 0
    cdef Span texts[MOST_EVENTS]
    while at < end:
        if count == MOST_EVENTS or end - at < 8 or memcmp(s + at, b"data: ", 6) != 0:
            return None
        line_end = _line_end(s, at + 6, end)
        # the event's one data line, then a blank one (a JSON value may span
        # lines, an event's data may not: each is read within its line)
        if line_end < 0 or line_end + 1 >= end or s[line_end + 1] != 10:
            return None
        if _chunk(s, at + 6, line_end, &texts[count]) != line_end:
            return None
        count += 1
        at = line_end + 2
    if count == 0:
        return None
    return _written(s, texts, count, head, tail)


cdef inline Py_ssize_t _line_end(text_t s, Py_ssize_t at, Py_ssize_t end) noexcept nogil:
    cdef const void* found = memchr(s + at, 10, end - at)
    return -1 if found == NULL else <text_t>found - s


# an Anthropic text delta's data as Anthropic writes it, around its index and its text
cdef bytes DELTA_HEAD = b'data: {"type":"content_block_delta","index":'
cdef bytes DELTA_FIELD = b',"delta":{"type":"text_delta","text":'
# and the events the translator passes over: a text block's start and any block's
# end say nothing to an OpenAI client (its chunks have no blocks), nor does a ping
cdef bytes PING = b'data: {"type":"ping"}\n\n'
cdef bytes BLOCK_STOP = b'data: {"type":"content_block_stop","index":'
cdef bytes BLOCK_START = b'data: {"type":"content_block_start","index":'
cdef bytes TEXT_BLOCK = b',"content_block":{"type":"text","text":""}}\n\n'


cdef inline bint _starts(text_t s, Py_ssize_t at, Py_ssize_t end, bytes what) noexcept:
    cdef Py_ssize_t size = PyBytes_GET_SIZE(what)
    return end - at >= size and memcmp(s + at, PyBytes_AS_STRING(what), size) == 0


def text_of_events(bytes chunk, bytes head, bytes tail):
    """An Anthropic stream's bytes that are whole text-delta events, each
    ``event: <name>``, then ``data: {"type":"content_block_delta","index":N,
    "delta":{"type":"text_delta","text":"..."}}`` and a blank line (and
    the events that say nothing: pings, a text block's start, any block's
    end): each text between
    `head` and `tail`, in one bytes object.  None for any other bytes (any
    other event, or these written another way)."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(chunk)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(chunk)
    cdef Py_ssize_t at = 0
    cdef Py_ssize_t digits, line_end
    cdef Py_ssize_t count = 0
    cdef Span texts[MOST_EVENTS]
    if end == 0:
        return None
    while at < end:
        if count == MOST_EVENTS or end - at < 7 or memcmp(s + at, b"event: ", 7) != 0:
            return None
        line_end = _line_end(s, at + 7, end)
        if line_end < 0:
            return None
        at = line_end + 1
        if _starts(s, at, end, PING):
            at += PyBytes_GET_SIZE(PING)
            continue
        if _starts(s, at, end, BLOCK_STOP):
            at += PyBytes_GET_SIZE(BLOCK_STOP)
            digits = _digits(s, at, end)
            if digits == at or end - digits < 3 or memcmp(s + digits, b"}\n\n", 3) != 0:
                return None
            at = digits + 3
            continue
        if _starts(s, at, end, BLOCK_START):
            at += PyBytes_GET_SIZE(BLOCK_START)
            digits = _digits(s, at, end)
            if digits == at or not _starts(s, digits, end, TEXT_BLOCK):
                return None
            at = digits + PyBytes_GET_SIZE(TEXT_BLOCK)
            continue
        if not _starts(s, at, end, DELTA_HEAD):
            return None
        at += PyBytes_GET_SIZE(DELTA_HEAD)
        digits = _digits(s, at, end)
        if digits == at or not _starts(s, digits, end, DELTA_FIELD):
            return None
        at = digits + PyBytes_GET_SIZE(DELTA_FIELD)
        if at >= end or s[at] != 34:
            return None
        texts[count].start = at
        at = _string(s, at, end)
        texts[count].end = at
        if at < 0 or end - at < 4 or memcmp(s + at, b"}}\n\n", 4) != 0:
            return None
        count += 1
        at += 4
    return _written(s, texts, count, head, tail)
