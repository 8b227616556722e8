// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice EIP-1271 smart-contract wallet for tests: a signature is valid iff `owner` produced it.
contract TestContractWallet {
    bytes4 internal constant MAGIC_VALUE = 0x1626ba7e;
    bytes4 internal constant INVALID_VALUE = 0xffffffff;

    address public immutable owner;

    constructor(address owner_) {
        owner = owner_;
    }

    /// @param hash The digest that was signed (for SIWE: the EIP-191 hash of the message).
    /// @param signature 65 bytes r || s || v, v in {27, 28} (0 / 1 accepted too).
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        if (signature.length != 65) {
            return INVALID_VALUE;
        }
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) {
            v += 27;
        }
        address signer = ecrecover(hash, v, r, s);
        if (signer != address(0) && signer == owner) {
            return MAGIC_VALUE;
        }
        return INVALID_VALUE;
    }
}
