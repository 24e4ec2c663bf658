# cython: boundscheck=False, wraparound=False, initializedcheck=False
"""The commonest translations, of text, in C (translation/fast_text.py loads them).

Most of what crosses the two APIs is text: a stream's text deltas, a whole
answer of text.  The Python path spends ~16,000 CPU instructions on a delta
(finding the event, decoding its JSON, writing the client's) and ~25,000 on
an answer; these functions spend a few thousand, reading the upstream's
JSON bytes once, checking every byte the Python path would check (valid
JSON, valid UTF-8, the types msgspec would ask for), and writing the
client's bytes with each text's JSON string copied as it came.  What they
do not take (another event, a tool call, anything out of the ordinary: an
escape in a key, a duplicate member, whitespace where the Python path
takes none) is left to the Python path, which is the reference:
tests/gateway/translation/test_fast_text.py holds these to it.

- text_of_chunks, text_of_events: a stream's whole events of text from a
  point in a read (the caller knows the stream is in its text: a text block
  open, the client's head written), and where they end;
- first_event: where a stream's next event ends, and its data;
- chat_answer_of_message, message_of_chat_answer: a whole answer of text.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy, strlen

ctypedef const unsigned char* text_t

cdef enum:
    MOST_EVENTS = 64  # in one call; the caller calls again for more
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


# the bytes that go into a JSON string as they are: printable ASCII but " and \
cdef bint _PLAIN[256]
for _byte in range(256):
    _PLAIN[_byte] = 0x20 <= _byte < 0x80 and _byte != 34 and _byte != 92


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
        if _PLAIN[c]:  # most of a text: one lookup a byte
            at += 1
            continue
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


def text_of_chunks(bytes chunk not None, Py_ssize_t at, bytes head not None, bytes tail not None):
    """The whole ``data: {chunk}`` events from `at` in an OpenAI stream's
    `chunk` that are more text of choice 0 and nothing else: (their texts,
    each between `head` and `tail`, in one bytes object; where in `chunk`
    they end).  What follows (another event, or one not ended in `chunk`) is
    the Python path's."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(chunk)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(chunk)
    cdef Py_ssize_t after
    cdef Py_ssize_t count = 0
    cdef Span texts[MOST_EVENTS]
    if not 0 <= at <= end:
        raise IndexError("at is outside the chunk")
    while at < end and count < MOST_EVENTS:
        after = _chunk_event(s, at, end, &texts[count])
        if after < 0:
            break
        count += 1
        at = after
    return _written(s, texts, count, head, tail), at


cdef Py_ssize_t _chunk_event(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept nogil:
    """The index after the event at `at` if it is more text, else -1."""
    cdef Py_ssize_t line_end
    if end - at < 8 or memcmp(s + at, b"data: ", 6) != 0:
        return -1
    # the event's one data line, then a blank one (a JSON value may span
    # lines, an event's data may not: it is read within its line)
    line_end = _line_end(s, at + 6, end)
    if line_end < 0 or line_end + 1 >= end or s[line_end + 1] != 10:
        return -1
    if _chunk(s, at + 6, line_end, text) != line_end:
        return -1
    return line_end + 2


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


def text_of_events(bytes chunk not None, Py_ssize_t at, bytes head not None, bytes tail not None):
    """The whole events from `at` in an Anthropic stream's `chunk` that
    are text deltas, each ``event: <name>``, then ``data: {"type":
    "content_block_delta","index":N,"delta":{"type":"text_delta","text":
    "..."}}`` and a blank line, or events that say nothing (pings, a text
    block's start, any block's end): (their texts, each between `head` and
    `tail`, in one bytes object; where in `chunk` they end).  What
    follows (another event, these written another way, or an event not
    ended in `chunk`) is the Python path's."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(chunk)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(chunk)
    cdef Py_ssize_t after
    cdef Py_ssize_t count = 0
    cdef Span texts[MOST_EVENTS]
    if not 0 <= at <= end:
        raise IndexError("at is outside the chunk")
    while at < end and count < MOST_EVENTS:
        after = _text_event(s, at, end, &texts[count])
        if after < 0:
            break
        if texts[count].start >= 0:
            count += 1
        at = after
    return _written(s, texts, count, head, tail), at


cdef Py_ssize_t _text_event(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept:
    """The index after the event at `at` if it is a text delta (its text into
    `text`) or says nothing (text.start -1), else -1."""
    cdef Py_ssize_t digits, line_end, after
    text.start = -1
    if end - at < 7 or memcmp(s + at, b"event: ", 7) != 0:
        return -1
    line_end = _line_end(s, at + 7, end)
    if line_end < 0:
        return -1
    at = line_end + 1
    if _starts(s, at, end, PING):
        return at + PyBytes_GET_SIZE(PING)
    if _starts(s, at, end, BLOCK_STOP):
        at += PyBytes_GET_SIZE(BLOCK_STOP)
        digits = _digits(s, at, end)
        if digits == at or end - digits < 3 or memcmp(s + digits, b"}\n\n", 3) != 0:
            return -1
        return digits + 3
    if _starts(s, at, end, BLOCK_START):
        at += PyBytes_GET_SIZE(BLOCK_START)
        digits = _digits(s, at, end)
        if digits == at or not _starts(s, digits, end, TEXT_BLOCK):
            return -1
        return digits + PyBytes_GET_SIZE(TEXT_BLOCK)
    if not _starts(s, at, end, DELTA_HEAD):
        return -1
    at += PyBytes_GET_SIZE(DELTA_HEAD)
    digits = _digits(s, at, end)
    if digits == at or not _starts(s, digits, end, DELTA_FIELD):
        return -1
    at = digits + PyBytes_GET_SIZE(DELTA_FIELD)
    if at >= end or s[at] != 34:
        return -1
    after = _string(s, at, end)
    if after < 0 or end - after < 4 or memcmp(s + after, b"}}\n\n", 4) != 0:
        return -1
    text.start, text.end = at, after
    return after + 4


# ---- a stream's next event ----------------------------------------------------------


def first_event(bytes chunk not None, Py_ssize_t at):
    """The event from `at` in a stream's `chunk`: (its data if it is one
    ``data:`` line, after an ``event:`` line or not, else None; the index
    after the blank line that ends it), or (None, -1) when none ends in
    `chunk`.  sse.SseReader.first reads any other event itself."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(chunk)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(chunk)
    cdef Py_ssize_t line, stop
    cdef Py_ssize_t at_line = at
    if not 0 <= at <= end:
        raise IndexError("at is outside the chunk")
    while True:  # the blank line: \n\n, or \n\r\n
        line = _line_end(s, at_line, end)
        if line < 0:
            return None, -1
        if line + 1 < end and s[line + 1] == 10:
            stop = line + 2
            break
        if line + 2 < end and s[line + 1] == 13 and s[line + 2] == 10:
            stop = line + 3
            break
        at_line = line + 1
    if memchr(s + at, 13, stop - at) != NULL:
        return None, stop  # \r\n lines: the Python way
    line = at
    if stop - line > 7 and memcmp(s + line, b"event: ", 7) == 0:
        line = _line_end(s, line, stop) + 1
    if stop - line >= 8 and memcmp(s + line, b"data: ", 6) == 0:
        if _line_end(s, line + 6, stop) == stop - 2:
            return PyBytes_FromStringAndSize(<const char*>s + line + 6, stop - 2 - line - 6), stop
    return None, stop


# ---- Anthropic's whole answer of text → OpenAI's ------------------------------------
#
# The Python path decodes the message (A.Message), builds the ChatCompletion
# (chat_via_messages.chat_answer) and encodes it.  Here, an answer whose
# content is text blocks alone is read and the completion written as that path
# writes it: the texts joined (a JSON string's inside may be cut and joined
# anywhere between its escapes), the finish reason, the usage with cache reads.

cdef enum:
    MOST_BLOCKS = 64  # of text in one answer; more take the Python path
    MOST_DIGITS = 15  # of a token count: far above any answer's, below int64's


cdef struct Count:
    bint given  # the member was there (null included)
    long long value  # 0 for null


cdef Py_ssize_t _count(text_t s, Py_ssize_t at, Py_ssize_t end, Count* count) noexcept nogil:
    """A token count (an int, or null) at `at`: the index after it, or -1."""
    cdef Py_ssize_t after
    cdef Py_ssize_t n
    cdef bint negative
    count.given = True
    count.value = 0
    if s[at] == 110:
        return _null(s, at, end)
    after = _number(s, at, end)
    negative = s[at] == 45
    n = at + 1 if negative else at
    if after < 0 or after - n > MOST_DIGITS:
        return -1
    while n < after:
        if not 48 <= s[n] <= 57:
            return -1  # a fraction or an exponent: not the int msgspec wants
        count.value = count.value * 10 + (s[n] - 48)
        n += 1
    if negative:
        count.value = -count.value
    return after


cdef struct Usage:
    Count input
    Count output
    Count cache_read
    Count cache_creation


cdef Py_ssize_t _usage(text_t s, Py_ssize_t at, Py_ssize_t end, Usage* usage) noexcept nogil:
    cdef Member member
    cdef bint first = True
    cdef Count* count
    usage.input.given = usage.output.given = False
    usage.cache_read.given = usage.cache_creation.given = False
    usage.input.value = usage.output.value = 0  # a count not given is 0
    usage.cache_read.value = usage.cache_creation.value = 0
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value
        first = False
        if at < 0:
            return -1
        count = NULL
        if _is(s, &member, b"input_tokens", 12):
            count = &usage.input
        elif _is(s, &member, b"output_tokens", 13):
            count = &usage.output
        elif _is(s, &member, b"cache_read_input_tokens", 23):
            count = &usage.cache_read
        elif _is(s, &member, b"cache_creation_input_tokens", 27):
            count = &usage.cache_creation
        if count == NULL:
            at = _value(s, at, end, 3)
        elif count.given:
            return -1  # twice: left to msgspec
        else:
            at = _count(s, at, end, count)
    return -1


cdef Py_ssize_t _text_block(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept nogil:
    """A block {"type":"text","text":"..."} (members the Python path does not
    read, such as citations, passed over): the index after it, or -1."""
    cdef Member member
    cdef bint first = True
    cdef bint typed = False
    text.start = -1
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value if typed and text.start >= 0 else -1
        first = False
        if at < 0:
            return -1
        if _is(s, &member, b"type", 4):
            if typed or _word(s, at, end, b'"text"', 6) < 0:
                return -1
            typed = True
            at += 6
        elif _is(s, &member, b"text", 4):
            if text.start >= 0 or s[at] != 34:
                return -1
            text.start = at
            at = _string(s, at, end)
            text.end = at
        elif (
            _is(s, &member, b"thinking", 8) or _is(s, &member, b"signature", 9)
            or _is(s, &member, b"data", 4) or _is(s, &member, b"id", 2)
            or _is(s, &member, b"name", 4) or _is(s, &member, b"input", 5)
        ):
            return -1  # another block's fields, read by the Python path
        else:
            at = _value(s, at, end, 3)
    return -1


# what each stop_reason finishes as (chat_via_messages.FINISH_REASONS, no tool
# called: tool_use is the schema tool's answer); any other, or null, is "stop"
cdef const char* FINISH_LENGTH = b'"length"'
cdef const char* FINISH_FILTER = b'"content_filter"'
cdef const char* FINISH_STOP = b'"stop"'


cdef struct Answer:
    Span id
    Span model
    Span stop_reason  # start -1: null or none
    Py_ssize_t blocks
    Span texts[MOST_BLOCKS]
    Usage usage


cdef Py_ssize_t _message(text_t s, Py_ssize_t end, Answer* answer) noexcept nogil:
    """The whole message of text, into `answer`: the index after it, or -1."""
    cdef Member member
    cdef bint first = True
    cdef bint seen_content = False
    cdef bint seen_usage = False
    cdef unsigned int seen = 0  # of the string members, each once
    cdef unsigned int bit
    cdef Py_ssize_t at = _object(s, _space(s, 0, end), end)
    answer.id.start = answer.model.start = answer.stop_reason.start = -1
    answer.blocks = 0
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            if not (seen_content and seen_usage) or answer.id.start < 0 or answer.model.start < 0:
                return -1
            return member.value
        first = False
        if at < 0:
            return -1
        bit = 0
        if _is(s, &member, b"content", 7):
            if seen_content or s[at] != 91:
                return -1
            seen_content = True
            at = _space(s, at + 1, end)
            if at < end and s[at] == 93:
                at += 1
                continue
            while True:
                if answer.blocks == MOST_BLOCKS:
                    return -1
                at = _text_block(s, at, end, &answer.texts[answer.blocks])
                if at < 0:
                    return -1
                answer.blocks += 1
                at = _space(s, at, end)
                if at >= end:
                    return -1
                if s[at] == 93:
                    at += 1
                    break
                if s[at] != 44:
                    return -1
                at = _space(s, at + 1, end)
        elif _is(s, &member, b"usage", 5):
            if seen_usage:
                return -1
            seen_usage = True
            at = _usage(s, at, end, &answer.usage)
        elif _is(s, &member, b"id", 2):
            bit = 1
            answer.id.start = at
            at = _string(s, at, end) if s[at] == 34 else -1
            answer.id.end = at
        elif _is(s, &member, b"model", 5):
            bit = 2
            answer.model.start = at
            at = _string(s, at, end) if s[at] == 34 else -1
            answer.model.end = at
        elif _is(s, &member, b"stop_reason", 11):
            bit = 4
            if s[at] == 34:
                answer.stop_reason.start = at
                at = _string(s, at, end)
                answer.stop_reason.end = at
                if at > 0 and memchr(s + answer.stop_reason.start, 92, at - answer.stop_reason.start):
                    return -1  # an escape: the reason it spells is the Python path's to read
            else:
                at = _null(s, at, end)
        elif _is(s, &member, b"type", 4) or _is(s, &member, b"role", 4):
            at = _string(s, at, end) if s[at] == 34 else -1
        elif _is(s, &member, b"stop_sequence", 13):
            bit = 8
            at = _string_or_null(s, at, end)
        else:
            at = _value(s, at, end, 1)
        if bit:
            if seen & bit:
                return -1
            seen |= bit
    return -1


cdef inline bint _span_is(text_t s, Span* span, const char* word, Py_ssize_t size) noexcept nogil:
    return span.end - span.start == size and memcmp(s + span.start, word, size) == 0


cdef const char* _finish(text_t s, Span* stop_reason) noexcept nogil:
    if stop_reason.start < 0:
        return FINISH_STOP
    if _span_is(s, stop_reason, b'"max_tokens"', 12) or _span_is(
        s, stop_reason, b'"model_context_window_exceeded"', 31
    ):
        return FINISH_LENGTH
    if _span_is(s, stop_reason, b'"refusal"', 9):
        return FINISH_FILTER
    return FINISH_STOP


cdef class _Writer:
    """Bytes written into a buffer of a size known beforehand (a first pass
    counts, a second writes: `out` None while counting)."""

    cdef Py_ssize_t size
    cdef char* to
    cdef object out

    cdef void put(self, const char* what, Py_ssize_t size) noexcept:
        if self.to != NULL:
            memcpy(self.to, what, size)
            self.to += size
        self.size += size

    cdef void text(self, const char* what) noexcept:
        self.put(what, strlen(what))

    cdef void number(self, long long value) noexcept:
        # by hand: snprintf costs a thousand instructions a number, this a few dozen
        cdef char digits[24]
        cdef int at = 24
        cdef unsigned long long left = <unsigned long long>(-value if value < 0 else value)
        while True:
            at -= 1
            digits[at] = <char>(48 + left % 10)
            left //= 10
            if left == 0:
                break
        if value < 0:
            at -= 1
            digits[at] = 45
        self.put(digits + at, 24 - at)


cdef void _write(_Writer w, text_t s, Answer* answer, long long created) noexcept:
    cdef Py_ssize_t n
    cdef Usage* usage = &answer.usage
    cdef long long prompt = usage.input.value + usage.cache_read.value + usage.cache_creation.value
    w.text(b'{"id":')
    w.put(<const char*>s + answer.id.start, answer.id.end - answer.id.start)
    w.text(b',"model":')
    w.put(<const char*>s + answer.model.start, answer.model.end - answer.model.start)
    w.text(b',"choices":[{"index":0,"message":{"role":"assistant","content":')
    if answer.blocks == 0:
        w.text(b"null")
    else:
        w.text(b'"')
        for n in range(answer.blocks):  # each text's inside, joined
            w.put(<const char*>s + answer.texts[n].start + 1, answer.texts[n].end - answer.texts[n].start - 2)
        w.text(b'"')
    w.text(b',"refusal":null},"finish_reason":')
    w.text(_finish(s, &answer.stop_reason))
    w.text(b',"logprobs":null}],"object":"chat.completion","created":')
    w.number(created)
    w.text(b',"usage":{"prompt_tokens":')
    w.number(prompt)
    w.text(b',"completion_tokens":')
    w.number(usage.output.value)
    w.text(b',"total_tokens":')
    w.number(prompt + usage.output.value)
    if usage.cache_read.given:
        w.text(b',"prompt_tokens_details":{"cached_tokens":')
        w.number(usage.cache_read.value)
        w.text(b"}")
    w.text(b"}}")


def chat_answer_of_message(bytes body not None, long long created):
    """An Anthropic answer (a message) whose content is text blocks alone, as
    OpenAI's chat.completion, `created` at the request's arrival; None for
    any other answer (a tool call, thinking, or anything the Python path
    must judge)."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(body)
    cdef Answer answer
    cdef Py_ssize_t after = _message(s, end, &answer)
    if after < 0 or _space(s, after, end) != end:
        return None
    cdef _Writer w = _Writer()
    _write(w, s, &answer, created)
    out = PyBytes_FromStringAndSize(NULL, w.size)
    w.to = PyBytes_AS_STRING(out)
    w.size = 0
    _write(w, s, &answer, created)
    return out


# ---- OpenAI's whole answer of text → Anthropic's -------------------------------------
#
# The Python path decodes the completion (O.ChatCompletion), builds the message
# (messages_via_chat.message_answer) and encodes it.  Here, a completion of one
# choice whose message is text alone (no tool call, refusal or reasoning) is
# read and the message written as that path writes it.

cdef struct Completion:
    Span id  # start -1: not given ("")
    Span model
    Span text  # start -1: no text (null, or not given)
    Span finish_reason  # start -1: null or not given
    Span stop_string  # vLLM's stop_reason, when a string; start -1: none
    Count prompt
    Count completion
    Count cached  # prompt_tokens_details.cached_tokens (given: an int there)


cdef Py_ssize_t _int(text_t s, Py_ssize_t at, Py_ssize_t end, bint null) noexcept nogil:
    """An int (or, if `null`, null) at `at`: the index after it, or -1."""
    cdef Count count
    if s[at] == 110 and not null:
        return -1
    return _count(s, at, end, &count)


cdef Py_ssize_t _details(
    text_t s, Py_ssize_t at, Py_ssize_t end, const char* name, Py_ssize_t size, Count* count
) noexcept nogil:
    """null, or an object whose `name` is an int or null (counted in `count`
    when an int), other members passed over: the index after it, or -1."""
    cdef Member member
    cdef bint first = True
    cdef bint seen = False
    count.given = False
    count.value = 0
    if s[at] == 110:
        return _null(s, at, end)
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value
        first = False
        if at < 0:
            return -1
        if _is(s, &member, name, size):
            if seen:
                return -1
            seen = True
            at = _count(s, at, end, count)
            if s[member.value] == 110:
                count.given = False  # null: not an int
        else:
            at = _value(s, at, end, 4)
    return -1


cdef Py_ssize_t _openai_usage(text_t s, Py_ssize_t at, Py_ssize_t end, Completion* answer) noexcept nogil:
    cdef Member member
    cdef bint first = True
    cdef unsigned int seen = 0
    cdef unsigned int bit
    cdef Count ignored
    if s[at] == 110:
        return _null(s, at, end)
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value
        first = False
        if at < 0:
            return -1
        bit = 0
        if _is(s, &member, b"prompt_tokens", 13):
            bit = 1
            at = _count(s, at, end, &answer.prompt)
        elif _is(s, &member, b"completion_tokens", 17):
            bit = 2
            at = _count(s, at, end, &answer.completion)
        elif _is(s, &member, b"total_tokens", 12):
            bit = 4
            at = _count(s, at, end, &ignored)
        elif _is(s, &member, b"prompt_tokens_details", 21):
            bit = 8
            at = _details(s, at, end, b"cached_tokens", 13, &answer.cached)
        elif _is(s, &member, b"completion_tokens_details", 25):
            bit = 16
            at = _details(s, at, end, b"reasoning_tokens", 16, &ignored)
        else:
            at = _value(s, at, end, 3)
        if seen & bit:
            return -1
        seen |= bit
    return -1


cdef Py_ssize_t _answer_message(text_t s, Py_ssize_t at, Py_ssize_t end, Span* text) noexcept nogil:
    """A choice's message of text alone: the index after it, or -1."""
    cdef Member member
    cdef bint first = True
    cdef unsigned int seen = 0
    cdef unsigned int bit
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value
        first = False
        if at < 0:
            return -1
        bit = 0
        if _is(s, &member, b"content", 7):
            bit = 1
            if s[at] == 34:
                text.start = at
                at = _string(s, at, end)
                text.end = at
            else:
                at = _null(s, at, end)
        elif _is(s, &member, b"role", 4):
            bit = 2
            at = _string_or_null(s, at, end)
        elif (
            _is(s, &member, b"refusal", 7)
            or _is(s, &member, b"tool_calls", 10)
            or _is(s, &member, b"reasoning_content", 17)
        ):
            bit = 4
            at = _null(s, at, end)  # anything there is another block: the Python path's
        else:
            at = _value(s, at, end, 4)
        if bit != 4 and seen & bit:
            return -1
        seen |= bit
    return -1


cdef Py_ssize_t _completion_choice(text_t s, Py_ssize_t at, Py_ssize_t end, Completion* answer) noexcept nogil:
    cdef Member member
    cdef bint first = True
    cdef unsigned int seen = 0
    cdef unsigned int bit
    at = _object(s, at, end)
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value
        first = False
        if at < 0:
            return -1
        bit = 0
        if _is(s, &member, b"message", 7):
            bit = 1
            at = _answer_message(s, at, end, &answer.text)
        elif _is(s, &member, b"finish_reason", 13):
            bit = 2
            if s[at] == 34:
                answer.finish_reason.start = at
                at = _string(s, at, end)
                answer.finish_reason.end = at
                if at > 0 and memchr(s + member.value, 92, at - member.value):
                    return -1  # an escape: the reason it spells is the Python path's to read
            else:
                at = _null(s, at, end)
        elif _is(s, &member, b"stop_reason", 11):
            bit = 4
            if s[at] == 34:
                answer.stop_string.start = at
                at = _string(s, at, end)
                answer.stop_string.end = at
            else:
                at = _int(s, at, end, True)  # a token's id, or null: no stop string
        elif _is(s, &member, b"index", 5):
            bit = 8
            at = _int(s, at, end, False)
        elif _is(s, &member, b"logprobs", 8):
            bit = 16
            # null, as OpenAI sends it unasked: anything else msgspec decodes (as Any),
            # and refuses numbers out of its range in it that a skip would let by
            at = _null(s, at, end)
        elif _is(s, &member, b"delta", 5):
            return -1
        else:
            at = _value(s, at, end, 3)
        if seen & bit:
            return -1
        seen |= bit
    return -1


cdef Py_ssize_t _completion(text_t s, Py_ssize_t end, Completion* answer) noexcept nogil:
    cdef Member member
    cdef bint first = True
    cdef unsigned int seen = 0
    cdef unsigned int bit
    cdef Py_ssize_t at = _object(s, _space(s, 0, end), end)
    answer.id.start = answer.model.start = answer.text.start = -1
    answer.finish_reason.start = answer.stop_string.start = -1
    answer.prompt.value = answer.completion.value = answer.cached.value = 0
    answer.cached.given = False
    while at > 0:
        at = _next_member(s, at, end, first, &member)
        if at == 0:
            return member.value if seen & 1 else -1
        first = False
        if at < 0:
            return -1
        bit = 0
        if _is(s, &member, b"choices", 7):
            bit = 1
            if s[at] != 91:
                return -1
            at = _completion_choice(s, _space(s, at + 1, end), end, answer)
            if at < 0:
                return -1
            at = _space(s, at, end)
            if at >= end or s[at] != 93:  # one choice alone
                return -1
            at += 1
        elif _is(s, &member, b"id", 2) or _is(s, &member, b"model", 5):
            bit = 2 if member.key_size == 2 else 4
            if s[at] != 34:
                return -1
            if bit == 2:
                answer.id.start = at
            else:
                answer.model.start = at
            at = _string(s, at, end)
            if bit == 2:
                answer.id.end = at
            else:
                answer.model.end = at
        elif _is(s, &member, b"usage", 5):
            bit = 8
            at = _openai_usage(s, at, end, answer)
        elif _is(s, &member, b"object", 6):
            bit = 16
            at = _string(s, at, end) if s[at] == 34 else -1
        elif _is(s, &member, b"created", 7):
            bit = 32
            at = _int(s, at, end, False)
        elif _is(s, &member, b"system_fingerprint", 18):
            bit = 64
            at = _string_or_null(s, at, end)
        elif _is(s, &member, b"error", 5):
            return -1
        else:
            at = _value(s, at, end, 1)
        if seen & bit:
            return -1
        seen |= bit
    return -1


cdef const char* _stop_reason(text_t s, Completion* answer) noexcept nogil:
    """messages_via_chat.STOP_REASONS, and vLLM's stop string as stop_sequence."""
    cdef Span* reason = &answer.finish_reason
    if reason.start < 0 or _span_is(s, reason, b'"stop"', 6):
        return b'"stop_sequence"' if answer.stop_string.start >= 0 and reason.start >= 0 else b'"end_turn"'
    if _span_is(s, reason, b'"length"', 8):
        return b'"max_tokens"'
    if _span_is(s, reason, b'"tool_calls"', 12) or _span_is(s, reason, b'"function_call"', 15):
        return b'"tool_use"'
    if _span_is(s, reason, b'"content_filter"', 16):
        return b'"refusal"'
    return b'"end_turn"'


cdef void _write_message(_Writer w, text_t s, Completion* answer) noexcept:
    cdef long long prompt = answer.prompt.value
    cdef long long cached = answer.cached.value
    w.text(b'{"id":')
    if answer.id.start < 0:
        w.text(b'""')
    else:
        w.put(<const char*>s + answer.id.start, answer.id.end - answer.id.start)
    w.text(b',"model":')
    if answer.model.start < 0:
        w.text(b'""')
    else:
        w.put(<const char*>s + answer.model.start, answer.model.end - answer.model.start)
    if answer.text.start >= 0 and answer.text.end - answer.text.start > 2:
        w.text(b',"content":[{"type":"text","text":')
        w.put(<const char*>s + answer.text.start, answer.text.end - answer.text.start)
        w.text(b'}],"usage":{"input_tokens":')
    else:
        w.text(b',"content":[],"usage":{"input_tokens":')
    if answer.cached.given:  # Anthropic's input leaves out what was read from the cache
        w.number(prompt - cached if prompt > cached else 0)
    else:
        w.number(prompt)
    w.text(b',"output_tokens":')
    w.number(answer.completion.value)
    if answer.cached.given:
        w.text(b',"cache_creation_input_tokens":0,"cache_read_input_tokens":')
        w.number(cached)
    w.text(b'},"type":"message","role":"assistant","stop_reason":')
    w.text(_stop_reason(s, answer))
    w.text(b',"stop_sequence":')
    if answer.stop_string.start >= 0 and (
        answer.finish_reason.start >= 0 and _span_is(s, &answer.finish_reason, b'"stop"', 6)
    ):
        w.put(<const char*>s + answer.stop_string.start, answer.stop_string.end - answer.stop_string.start)
    else:
        w.text(b"null")
    w.text(b"}")


def message_of_chat_answer(bytes body not None):
    """An OpenAI answer (a chat.completion) of one choice whose message is
    text alone, as Anthropic's message; None for any other answer (a tool
    call, a refusal, reasoning, several choices, or anything the Python
    path must judge)."""
    cdef text_t s = <text_t>PyBytes_AS_STRING(body)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(body)
    cdef Completion answer
    cdef Py_ssize_t after = _completion(s, end, &answer)
    if after < 0 or _space(s, after, end) != end:
        return None
    cdef _Writer w = _Writer()
    _write_message(w, s, &answer)
    out = PyBytes_FromStringAndSize(NULL, w.size)
    w.to = PyBytes_AS_STRING(out)
    w.size = 0
    _write_message(w, s, &answer)
    return out
