"""Published known-answer vectors. Nothing here is computed by the code under test.

Sources (copied verbatim, hex and base64 as published):

* RFC 6962 tree: transparency-dev/merkle ``testonly/constants.go`` (LeafInputs,
  NodeHashes, RootHashes) and ``proof/verify_test.go`` (inclusionProofs,
  consistencyProofs; that file numbers leaves from 1, converted to 0-based here). The
  same data is in google/certificate-transparency's C++ and Go merkle tree tests.
* RFC 6962 §2.1.3 "Example" (RFC 9162 §2.1.5): the 7-leaf tree's audit paths and
  consistency proofs, written as leaf ranges.
* draft-ietf-plants-merkle-tree-certs, appendix "Subtree Test Vectors", as reproduced in
  transparency-dev/merkle ``testonly/vectors_test.go``: rolling SHA-256 digests over
  every subtree hash and every subtree inclusion proof of a 130-leaf tree.
* golang.org/x/mod ``sumdb/note/note.go`` (package doc) and ``note_test.go``: the
  PeterNeumann / EnochRoot keys and signed notes.
* RFC 8785 §3.2.2 / §3.2.3 examples and cyberphone/json-canonicalization ``testdata``
  (the RFC author's reference test data).
"""

from __future__ import annotations

# --- RFC 6962 reference tree (transparency-dev/merkle testonly/constants.go) ------------

LEAVES: list[bytes] = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

# ROOTS[n] is the root of the tree of the first n leaves; ROOTS[0] is SHA-256("").
ROOTS: list[bytes] = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

# NODE_HASHES[level][index]: every perfect subtree of the 8-leaf tree.
NODE_HASHES: list[list[bytes]] = [
    [
        bytes.fromhex(h)
        for h in [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ]
    ],
    [
        bytes.fromhex(h)
        for h in [
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ]
    ],
    [
        bytes.fromhex(h)
        for h in [
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
    ],
    [bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")],
]

# (leaf index, tree size, PATH) from proof/verify_test.go inclusionProofs (1-based there).
INCLUSION_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (0, 1, []),
    (
        0,
        8,
        [
            bytes.fromhex("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            bytes.fromhex("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            bytes.fromhex("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        5,
        8,
        [
            bytes.fromhex("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            bytes.fromhex("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        3,
        [bytes.fromhex("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")],
    ),
    (
        1,
        5,
        [
            bytes.fromhex("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            bytes.fromhex("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            bytes.fromhex("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
]

# (old size, new size, PROOF) from proof/verify_test.go consistencyProofs.
CONSISTENCY_PROOFS: list[tuple[int, int, list[bytes]]] = [
    (1, 1, []),
    (
        1,
        8,
        [
            bytes.fromhex("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            bytes.fromhex("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            bytes.fromhex("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ],
    ),
    (
        6,
        8,
        [
            bytes.fromhex("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            bytes.fromhex("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
    (
        2,
        5,
        [
            bytes.fromhex("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            bytes.fromhex("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ],
    ),
    (
        6,
        7,
        [
            bytes.fromhex("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            bytes.fromhex("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            bytes.fromhex("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ],
    ),
]

# From proof/verify_test.go: a hash that is not in the tree, and the empty-tree root.
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
EMPTY_TREE_HASH = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

# --- RFC 6962 §2.1.3 example: 7 leaves d0..d6, node names as in the RFC's figure -------

RFC6962_EXAMPLE_NODES: dict[str, tuple[int, int]] = {
    "a": (0, 1),
    "b": (1, 2),
    "c": (2, 3),
    "d": (3, 4),
    "e": (4, 5),
    "f": (5, 6),
    "g": (0, 2),
    "h": (2, 4),
    "i": (4, 6),
    "j": (6, 7),
    "k": (0, 4),
    "l": (4, 7),
}
# "The audit path for d0 is [b, h, l]." and so on.
RFC6962_EXAMPLE_PATHS: dict[int, str] = {0: "bhl", 3: "cgl", 4: "fjk", 6: "ik"}
# "PROOF(3, D[7]) = [c, d, g, l]", "PROOF(4, D[7]) = [l]", "PROOF(6, D[7]) = [i, j, k]".
RFC6962_EXAMPLE_CONSISTENCY: dict[int, str] = {3: "cdgl", 4: "l", 6: "ijk"}

# --- draft-ietf-plants-merkle-tree-certs "Subtree Test Vectors" ---------------------------
# Tree of 130 leaves, leaf i being the single byte i. For every valid subtree [start, end)
# (start a multiple of BIT_CEIL(end - start)), in order of end then start, the digest
# covers the lines "[start, end) <hex MTH>\n" (hash vector), and for every index in it,
# "index [start, end)" followed by " <hex>" per proof hash and "\n" (inclusion vector).
MTC_SUBTREE_VECTOR_SIZE = 130
MTC_SUBTREE_HASH_DIGEST = "94a95384a8c69acea9b50d035a58285b3a777cb7a724005faa5e1f1e1190007f"
MTC_SUBTREE_INCLUSION_DIGEST = "ac2a8f989e44d99e399db448050ff5f19757df53cfb716aa81015d3955d8163f"

# --- golang.org/x/mod/sumdb/note ------------------------------------------------------------

GO_PETER_SIGNER_KEY = (
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
)
GO_PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgK"
    "vqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01o"
    "OTGwnWLox33WWd1RvMc+QQ=\n"
)
GO_PETER_NOTE = GO_TEXT + "\n" + GO_PETER_SIG
# note_test.go TestNewVerifier: wrong-length key with adjusted key hash, and unknown
# algorithm with adjusted key hash.
GO_BAD_VKEYS = [
    "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
]
# note_test.go TestOpen "Invalid encoded message syntax".
GO_BAD_NOTES = [
    GO_TEXT,
    GO_TEXT + "\n",
    GO_TEXT + "\n" + GO_PETER_SIG[:-1],
    "\x01" + GO_TEXT + "\n" + GO_PETER_SIG,
    GO_TEXT
    + "\n"
    + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfq"
    "dngotpRZb6KE6RyyBwJnAM=",
    GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n",
]
# The same file's "\xff" + text case is a byte string (invalid UTF-8).
GO_BAD_NOTE_BYTES = b"\xff" + (GO_TEXT + "\n" + GO_PETER_SIG).encode("utf-8")

# --- RFC 8785 -------------------------------------------------------------------------------

# §3.2.3 "Sorting of Object Properties": input text and the canonical output.
RFC8785_SORTING_INPUT = (
    '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", '
    '"\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", '
    '"\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", '
    '"\\u00f6": "Latin Small Letter O With Diaeresis"}'
)
RFC8785_SORTING_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
    '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
    '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
).encode("utf-8")

# §3.2.2 example with its "numbers" member (floats, which entries refuse) removed; the
# "string" and "literals" members and their canonical forms are the RFC's.
RFC8785_STRINGS_INPUT = (
    '{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", '
    '"literals": [null, true, false]}'
)
RFC8785_STRINGS_OUTPUT = (
    '{"literals":[null,true,false],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
).encode("utf-8")

# cyberphone/json-canonicalization testdata/input/weird.json -> testdata/output/weird.json
CYBERPHONE_WEIRD_INPUT = (
    "{\n"
    '  "\\u20ac": "Euro Sign",\n'
    '  "1": "One",\n'
    '  "\\u0080": "Control\\u007f",\n'
    '  "\\ud83d\\ude02": "Smiley",\n'
    '  "\\u00f6": "Latin Small Letter O With Diaeresis",\n'
    '  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n'
    '  "</script>": "Browser Challenge"\n'
    "}\n"
)
CYBERPHONE_WEIRD_OUTPUT = (
    '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f",'
    '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
    '"\U0001f602":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
).encode("utf-8")

# cyberphone/json-canonicalization testdata/input/unicode.json -> output/unicode.json:
# JCS does not normalise Unicode.
CYBERPHONE_UNICODE_INPUT = '{\n  "Unnormalized Unicode":"\\u1e0d\\u0307"\n}\n'
CYBERPHONE_UNICODE_OUTPUT = '{"Unnormalized Unicode":"\u1e0d\u0307"}'.encode()
