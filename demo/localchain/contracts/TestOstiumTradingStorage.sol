// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface IERC20Min {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function transfer(address to, uint256 value) external returns (bool);
}

/// @notice Holds traders' USDC collateral, as Ostium's TradingStorage does: traders approve
/// this contract, and only the trading contract moves the funds.
contract TestOstiumTradingStorage {
    IERC20Min public immutable usdc;
    address public trading;
    address public immutable owner;

    constructor(address usdc_) {
        usdc = IERC20Min(usdc_);
        owner = msg.sender;
    }

    function setTrading(address trading_) external {
        require(msg.sender == owner, "not owner");
        trading = trading_;
    }

    function pull(address from, uint256 amount) external {
        require(msg.sender == trading, "not trading");
        require(usdc.transferFrom(from, address(this), amount), "pull failed");
    }

    function pay(address to, uint256 amount) external {
        require(msg.sender == trading, "not trading");
        require(usdc.transfer(to, amount), "pay failed");
    }
}
