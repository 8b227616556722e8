// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface IERC20 {
    function transfer(address to, uint256 value) external returns (bool);
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

/// @notice Stands in for a cross-chain swap router (LI-FI's diamond) on the local chain: swaps the
/// native coin or an ERC-20 into `outputToken` at a fixed rate set by the owner, paying out of the
/// router's own `outputToken` balance (the deployer funds it). Same-chain and instant.
contract TestSwapRouter {
    address public owner;
    IERC20 public immutable outputToken;
    /// @notice fromToken (address(0) = native coin) -> output base units per input base unit, x1e18.
    mapping(address => uint256) public rateE18;

    event Swapped(
        address indexed sender,
        address indexed fromToken,
        uint256 fromAmount,
        address indexed recipient,
        uint256 toAmount,
        bytes32 transferId
    );

    constructor(address outputToken_) {
        owner = msg.sender;
        outputToken = IERC20(outputToken_);
    }

    function setRate(address fromToken, uint256 rateE18_) external {
        require(msg.sender == owner, "not owner");
        rateE18[fromToken] = rateE18_;
    }

    /// @notice Native coin: send `fromAmount` as msg.value. ERC-20: approve this router for
    /// `fromAmount` first; msg.value must be 0.
    function swap(address fromToken, uint256 fromAmount, address recipient, uint256 minOut, bytes32 transferId)
        external
        payable
        returns (uint256 toAmount)
    {
        uint256 rate = rateE18[fromToken];
        require(rate > 0, "no route");
        if (fromToken == address(0)) {
            require(msg.value == fromAmount, "msg.value != fromAmount");
        } else {
            require(msg.value == 0, "msg.value must be 0");
        }
        toAmount = fromAmount * rate / 1e18;
        require(toAmount >= minOut, "slippage");
        if (fromToken != address(0)) {
            _call(fromToken, abi.encodeCall(IERC20.transferFrom, (msg.sender, address(this), fromAmount)));
        }
        _call(address(outputToken), abi.encodeCall(IERC20.transfer, (recipient, toAmount)));
        emit Swapped(msg.sender, fromToken, fromAmount, recipient, toAmount, transferId);
    }

    /// @dev A token call that must succeed and return true or nothing (USDT-style tokens return nothing).
    function _call(address token, bytes memory data) private {
        (bool ok, bytes memory answer) = token.call(data);
        if (!ok) {
            assembly {
                revert(add(answer, 32), mload(answer))
            }
        }
        require(token.code.length > 0, "not a token");
        require(answer.length == 0 || abi.decode(answer, (bool)), "token call returned false");
    }
}
