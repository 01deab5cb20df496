# topic: names and filters per MQTT 3.1.1 section 4.7, on both interpreters.
import gc

from mote.topic import matches, name_error, validate_filter, validate_name
from support import MICROPYTHON, Rng, only_micropython, raises

# (filter, topic, expected): the standard's examples first, then edge cases.
CASES = [
    # 4.7.1.2 multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("sport/tennis/#", "sport/tennis/player1", True),
    ("sport/tennis/#", "sport/tennis", True),
    ("sport/tennis/#", "sport", False),
    ("sport/tennis/#", "sport/tenniss", False),
    # 4.7.1.3 single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/tennis/#", "sport/tennis/player1/ranking", True),
    ("+/tennis/#", "sport/tennis", True),
    # 4.7.2 topics beginning with $
    ("#", "$SYS/monitor/Clients", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("#", "$", False),
    ("+", "$", False),
    ("$", "$", True),
    ("a/#", "a/$b", True),  # '$' only matters at the very start
    ("+/$b", "a/$b", True),
    ("#", "x$", True),
    # 4.7.3 topic semantics: case, spaces, leading separator
    ("ACCOUNTS", "accounts", False),
    ("Accounts payable", "Accounts payable", True),
    ("/finance", "finance", False),
    ("finance", "/finance", False),
    # empty levels
    ("/", "/", True),
    ("+/+", "/", True),
    ("+", "/", False),
    ("#", "/", True),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("a//b", "a/b", False),
    ("a/b", "a//b", False),
    ("a/", "a/", True),
    ("a/", "a", False),
    ("a", "a/", False),
    ("a/#", "a/", True),
    ("a/+/#", "a/", True),  # '+' takes the empty level, '#' its parent
    ("a/+/#", "a", False),
    ("a/+/#", "a//", True),
    ("+/#", "a", True),
    ("//#", "/", True),
    ("//#", "a", False),
    ("//#", "//", True),
    # plain levels
    ("a", "a", True),
    ("a", "ab", False),
    ("ab", "a", False),
    ("a/b/c", "a/b/c", True),
    ("a/b/c", "a/b/d", False),
    ("a/b/c", "a/b", False),
    ("a/b", "a/b/c", False),
    ("é/+", "é/ñ", True),
    ("é/+", "e/ñ", False),
]

BAD_NAMES = [
    ("", "empty"),
    ("a/+", "wildcard"),
    ("a/#", "wildcard"),
    ("+", "wildcard"),
    ("#", "wildcard"),
    ("sport+", "wildcard"),
    ("a\x00b", "NUL"),
    ("\x00", "NUL"),
    (b"\xff", "UTF-8"),
    (b"a/\x80", "UTF-8"),  # a lone continuation byte
    (b"\xc0\x80", "UTF-8"),  # overlong NUL
    (b"\xc1\xbf", "UTF-8"),  # overlong
    (b"\xe0\x80\xaf", "UTF-8"),  # overlong '/'
    (b"\xed\xa0\x80", "UTF-8"),  # U+D800, a surrogate (MQTT-1.5.3-1)
    (b"\xed\xbf\xbf", "UTF-8"),  # U+DFFF
    (b"\xf4\x90\x80\x80", "UTF-8"),  # above U+10FFFF
    (b"\xf0\x80\x80\x80", "UTF-8"),  # overlong 4-byte
    (b"\xf5\x80\x80\x80", "UTF-8"),
    (b"a\xe2\x82", "UTF-8"),  # truncated at the end
    (b"\xe2\x82/", "UTF-8"),  # truncated before a separator
    (b"\xc3\xa9\xc3", "UTF-8"),
]

BAD_FILTERS = [
    ("", "empty"),
    ("sport/tennis#", "bad '#'"),
    ("sport/tennis/#/ranking", "'#' not last"),
    ("#/", "'#' not last"),
    ("##", "bad '#'"),
    ("#a", "bad '#'"),
    ("a#", "bad '#'"),
    ("a/#b", "bad '#'"),
    ("sport+", "bad '+'"),
    ("+a", "bad '+'"),
    ("a/+b/c", "bad '+'"),
    ("a/b+/c", "bad '+'"),
    ("++", "bad '+'"),
    ("+#", "bad '+'"),
    ("a\x00/#", "NUL"),
    (b"\xed\xa0\x80/#", "UTF-8"),
]

GOOD_NAMES = ["a", "/", "//", "a/b", "/finance", "Accounts payable", "$SYS/x", "é", " ", "$"]
GOOD_FILTERS = [
    "#",
    "+",
    "/",
    "+/+",
    "/+",
    "+/",
    "sport/#",
    "sport/tennis/#",
    "+/tennis/#",
    "sport/+/player1",
    "sport/tennis/+",
    "a//+//#",
    "$SYS/#",
    "a",
    "é/+/#",
]


def _forms(s):
    """str, bytes, bytearray and memoryview of one topic."""
    b = s.encode() if isinstance(s, str) else s
    return [s, b, bytearray(b), memoryview(b)]


def test_spec_examples_match_and_do_not_match():
    for f, t, want in CASES:
        assert matches(f, t) == want, (f, t, want)


def test_every_case_is_valid_input():
    for f, t, _ in CASES:
        validate_filter(f)
        validate_name(t)


def test_str_bytes_bytearray_and_memoryview_are_equivalent():
    for f, t, want in CASES:
        for fx in _forms(f):
            for tx in _forms(t):
                assert matches(fx, tx) == want, (fx, tx)


def test_matches_a_topic_in_place_in_a_receive_buffer():
    buf = bytearray(b"\x30\x0a\x00\x03a/bhello")
    mv = memoryview(buf)
    assert matches(b"a/+", mv[4:7])
    assert matches(b"#", mv[4:7])
    assert not matches(b"a", mv[4:7])


def test_valid_names_and_filters_pass():
    for t in GOOD_NAMES:
        for x in _forms(t):
            validate_name(x)
            validate_filter(x)  # every topic name is also a filter
    for f in GOOD_FILTERS:
        for x in _forms(f):
            validate_filter(x)


def test_invalid_names_raise_value_error_naming_the_rule():
    for t, rule in BAD_NAMES:
        for x in _forms(t):
            e = raises(ValueError, validate_name, x)
            assert rule in e.args[0], (t, e.args)
            assert e.args[1] is x


def test_invalid_filters_raise_value_error_naming_the_rule():
    for f, rule in BAD_FILTERS:
        for x in _forms(f):
            e = raises(ValueError, validate_filter, x)
            assert rule in e.args[0], (f, e.args)
            assert e.args[1] is x


def test_bad_utf8_and_nul_are_rejected_in_filters_too():
    for t, rule in BAD_NAMES:
        if rule in ("UTF-8", "NUL", "empty"):
            e = raises(ValueError, validate_filter, t)
            assert rule in e.args[0]


def test_non_bytes_like_is_a_type_error():
    for bad in (None, 5, ["a"]):
        raises(TypeError, validate_name, bad)
        raises(TypeError, validate_filter, bad)


def test_length_65535_passes_65536_fails():
    ok = "a" * 65535
    validate_name(ok)
    validate_filter(ok)
    validate_name(ok.encode())
    too_long = ok + "b"
    e = raises(ValueError, validate_name, too_long)
    assert "too long" in e.args[0]
    raises(ValueError, validate_filter, too_long.encode())
    raises(ValueError, validate_filter, "a" * 65534 + "/#")
    validate_filter("a" * 65533 + "/#")


def test_length_counts_utf8_bytes_not_characters():
    two = "é" * 32767 + "a"  # 32768 characters, 65535 bytes
    assert len(two.encode()) == 65535
    validate_name(two)
    e = raises(ValueError, validate_name, "é" * 32768)  # 32768 characters, 65536 bytes
    assert "too long" in e.args[0]
    four = "\U0001f600" * 16384  # 16384 characters, 65536 bytes
    raises(ValueError, validate_name, four)
    validate_name("\U0001f600" * 16383 + "abc")


def test_multibyte_utf8_is_accepted():
    for t in ("é", "ñ/€", "\U0001f600", "\u07ff", "\uffff"):
        validate_name(t)
    for b in (b"\xc2\x80", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xf4\x8f\xbf\xbf"):
        validate_name(b)


def test_validate_returns_bytes_like_and_does_not_copy():
    assert validate_name("a/b") == b"a/b"
    assert validate_filter("a/+") == b"a/+"
    b = b"a/b"
    ba = bytearray(b"a/#")
    mv = memoryview(b)
    assert validate_name(b) is b
    assert validate_filter(ba) is ba
    assert validate_name(mv) is mv


def test_name_error_checks_a_slice_without_copying():
    buf = bytearray(b"xx a/b\x00 a/+ ")
    assert name_error(buf, 3, 3) is None
    assert "NUL" in name_error(buf, 3, 4)
    assert "wildcard" in name_error(buf, 8, 3)
    assert "empty" in name_error(buf, 3, 0)


def _ref_matches(f, t):
    """Reference: split both on '/' and compare level by level."""
    if t[:1] == "$" and f[:1] in ("+", "#"):
        return False
    fl = f.split("/")
    tl = t.split("/")
    for i in range(len(fl)):
        if fl[i] == "#":
            return True
        if i >= len(tl):
            return False
        if fl[i] != "+" and fl[i] != tl[i]:
            return False
    return len(fl) == len(tl)


_TOPIC_LEVELS = ["a", "b", "ab", "", "$", "$S", "é"]
_FILTER_LEVELS = ["a", "b", "ab", "", "$", "$S", "é", "+", "+"]


def _random_topic(rng, levels):
    n = rng.between(1, 5)
    return "/".join([levels[rng.below(len(levels))] for _ in range(n)])


def test_matches_agrees_with_a_split_reference_on_random_input():
    seed = 20240611
    rng = Rng(seed)
    hits = 0
    for i in range(3000):
        t = _random_topic(rng, _TOPIC_LEVELS)
        if rng.below(3) == 0:
            t = _random_topic(rng, _TOPIC_LEVELS[:3])  # more matches
        f = _random_topic(rng, _FILTER_LEVELS)
        if rng.below(3) == 0:
            f = t if rng.below(2) else f
        if rng.below(3) == 0:
            f = "#" if rng.below(4) == 0 else f + "/#"
        if not t or not f:
            continue  # an empty topic or filter is invalid, tested above
        validate_filter(f)
        want = _ref_matches(f, t)
        hits += want
        got = matches(f.encode(), t.encode())
        assert got == want, ("seed", seed, "round", i, f, t, want)
    assert hits > 300  # the generator does produce matches


if MICROPYTHON:
    import micropython

# Allocation: matching and validating bytes-like topics must not touch the heap.
_ALLOC_PAIRS = [
    (b"sport/tennis/player1/#", b"sport/tennis/player1/score/wimbledon"),
    (b"sport/+", b"sport"),
    (b"+/monitor/Clients", b"$SYS/monitor/Clients"),
    (b"a/+/b", b"a//b"),
    (b"a/b/c", b"a/b/d"),
    (b"#", b"x"),
]
_RX = bytearray(b"\x30\x0e\x00\x0csport/tennisHI")
_RX_MV = memoryview(_RX)
_RX_TOPIC = _RX_MV[4:16]


def _match_all():
    i = 0
    while i < len(_ALLOC_PAIRS):
        p = _ALLOC_PAIRS[i]
        matches(p[0], p[1])
        i += 1
    matches(b"sport/+", _RX_TOPIC)
    matches(b"sport/#", _RX_TOPIC)


def _validate_all():
    i = 0
    while i < len(_ALLOC_PAIRS):
        p = _ALLOC_PAIRS[i]
        validate_filter(p[0])
        validate_name(p[1])
        i += 1
    validate_name(b"caf\xc3\xa9/\xf0\x9f\x98\x80")
    validate_name(_RX_TOPIC)
    name_error(_RX, 4, 12)


def _no_alloc(fn):
    # support.assert_no_alloc calls fn(*args), and on MicroPython 1.29 a star call
    # allocates even with no args, so it fails for any fn; this is it without the star.
    only_micropython()
    fn()
    gc.collect()
    micropython.heap_lock()
    try:
        fn()
    except MemoryError:
        micropython.heap_unlock()
        raise AssertionError("allocated: " + fn.__name__)
    micropython.heap_unlock()


def test_matches_allocates_nothing_for_bytes_like_arguments():
    _no_alloc(_match_all)


def test_validation_allocates_nothing_for_valid_bytes_like_topics():
    _no_alloc(_validate_all)
