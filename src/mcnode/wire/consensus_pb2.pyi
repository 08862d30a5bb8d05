from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEER_OK: _ClassVar[PeerResult]
    PEER_MALFORMED: _ClassVar[PeerResult]
    PEER_UNKNOWN_SIGNER: _ClassVar[PeerResult]
    PEER_BAD_SIGNATURE: _ClassVar[PeerResult]
    PEER_WRONG_SENDER: _ClassVar[PeerResult]
    PEER_OTHER_CHAIN: _ClassVar[PeerResult]
    PEER_TOO_LARGE: _ClassVar[PeerResult]
PEER_OK: PeerResult
PEER_MALFORMED: PeerResult
PEER_UNKNOWN_SIGNER: PeerResult
PEER_BAD_SIGNATURE: PeerResult
PEER_WRONG_SENDER: PeerResult
PEER_OTHER_CHAIN: PeerResult
PEER_TOO_LARGE: PeerResult

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConsensusMsg(_message.Message):
    __slots__ = ("scp_msg", "prev_block_id", "signer", "signature", "relayed_by")
    SCP_MSG_FIELD_NUMBER: _ClassVar[int]
    PREV_BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    RELAYED_BY_FIELD_NUMBER: _ClassVar[int]
    scp_msg: bytes
    prev_block_id: bytes
    signer: bytes
    signature: bytes
    relayed_by: str
    def __init__(self, scp_msg: _Optional[bytes] = ..., prev_block_id: _Optional[bytes] = ..., signer: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., relayed_by: _Optional[str] = ...) -> None: ...

class ConsensusMsgResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: PeerResult
    def __init__(self, result: _Optional[_Union[PeerResult, str]] = ...) -> None: ...

class LatestMsgResponse(_message.Message):
    __slots__ = ("msg", "has_msg")
    MSG_FIELD_NUMBER: _ClassVar[int]
    HAS_MSG_FIELD_NUMBER: _ClassVar[int]
    msg: ConsensusMsg
    has_msg: bool
    def __init__(self, msg: _Optional[_Union[ConsensusMsg, _Mapping]] = ..., has_msg: _Optional[bool] = ...) -> None: ...

class PeerAuthRequest(_message.Message):
    __slots__ = ("from_peer", "handshake", "signature")
    FROM_PEER_FIELD_NUMBER: _ClassVar[int]
    HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    from_peer: str
    handshake: bytes
    signature: bytes
    def __init__(self, from_peer: _Optional[str] = ..., handshake: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class PeerAuthResponse(_message.Message):
    __slots__ = ("handshake", "signature")
    HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    handshake: bytes
    signature: bytes
    def __init__(self, handshake: _Optional[bytes] = ..., signature: _Optional[bytes] = ...) -> None: ...

class FetchTxsRequest(_message.Message):
    __slots__ = ("from_peer", "sealed_request")
    FROM_PEER_FIELD_NUMBER: _ClassVar[int]
    SEALED_REQUEST_FIELD_NUMBER: _ClassVar[int]
    from_peer: str
    sealed_request: bytes
    def __init__(self, from_peer: _Optional[str] = ..., sealed_request: _Optional[bytes] = ...) -> None: ...

class EncryptedTxs(_message.Message):
    __slots__ = ("from_peer", "ciphertext")
    FROM_PEER_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    from_peer: str
    ciphertext: bytes
    def __init__(self, from_peer: _Optional[str] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class ProposeTxsResponse(_message.Message):
    __slots__ = ("accepted", "rejected")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    rejected: int
    def __init__(self, accepted: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class AuthRequest(_message.Message):
    __slots__ = ("handshake",)
    HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    handshake: bytes
    def __init__(self, handshake: _Optional[bytes] = ...) -> None: ...

class AuthResponse(_message.Message):
    __slots__ = ("session_id", "handshake")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    HANDSHAKE_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    handshake: bytes
    def __init__(self, session_id: _Optional[bytes] = ..., handshake: _Optional[bytes] = ...) -> None: ...

class ProposeTxRequest(_message.Message):
    __slots__ = ("session_id", "ciphertext")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    session_id: bytes
    ciphertext: bytes
    def __init__(self, session_id: _Optional[bytes] = ..., ciphertext: _Optional[bytes] = ...) -> None: ...

class ProposeTxResponse(_message.Message):
    __slots__ = ("result", "detail", "num_blocks", "tx_hash")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    result: str
    detail: str
    num_blocks: int
    tx_hash: bytes
    def __init__(self, result: _Optional[str] = ..., detail: _Optional[str] = ..., num_blocks: _Optional[int] = ..., tx_hash: _Optional[bytes] = ...) -> None: ...

class NodeConfigResponse(_message.Message):
    __slots__ = ("name", "min_fee", "block_version", "peers", "enclave_identity", "signing_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_FEE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_VERSION_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    ENCLAVE_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    min_fee: int
    block_version: int
    peers: _containers.RepeatedScalarFieldContainer[str]
    enclave_identity: bytes
    signing_key: bytes
    def __init__(self, name: _Optional[str] = ..., min_fee: _Optional[int] = ..., block_version: _Optional[int] = ..., peers: _Optional[_Iterable[str]] = ..., enclave_identity: _Optional[bytes] = ..., signing_key: _Optional[bytes] = ...) -> None: ...

class LastBlockInfo(_message.Message):
    __slots__ = ("index", "block_id", "num_blocks", "num_tx_outs", "min_fee")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    NUM_TX_OUTS_FIELD_NUMBER: _ClassVar[int]
    MIN_FEE_FIELD_NUMBER: _ClassVar[int]
    index: int
    block_id: bytes
    num_blocks: int
    num_tx_outs: int
    min_fee: int
    def __init__(self, index: _Optional[int] = ..., block_id: _Optional[bytes] = ..., num_blocks: _Optional[int] = ..., num_tx_outs: _Optional[int] = ..., min_fee: _Optional[int] = ...) -> None: ...

class GetBlocksRequest(_message.Message):
    __slots__ = ("offset", "limit")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    offset: int
    limit: int
    def __init__(self, offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class GetBlocksResponse(_message.Message):
    __slots__ = ("blocks", "num_blocks")
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    NUM_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    blocks: _containers.RepeatedScalarFieldContainer[bytes]
    num_blocks: int
    def __init__(self, blocks: _Optional[_Iterable[bytes]] = ..., num_blocks: _Optional[int] = ...) -> None: ...
