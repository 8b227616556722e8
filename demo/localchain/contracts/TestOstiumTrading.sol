// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

interface ITestOstiumTradingStorage {
    function pull(address from, uint256 amount) external;
    function pay(address to, uint256 amount) external;
}

/// @notice The part of Ostium's trading contract our adapter calls, for the local chain:
/// openTrade (with isDayTrade, selector 0x1365e4e4), closeTradeMarket (partial closes),
/// updateTp / updateSl, cancelOpenLimitOrder, and delegation (setDelegate, removeDelegate,
/// delegations, delegatedAction). Market orders are settled by a keeper at the oracle price
/// the owner sets: at once when ``autoExecute`` is on, else by ``executeOrder``. The keeper
/// (the owner) also closes a trade whose take-profit or stop-loss the oracle price reached,
/// at that level, with ``executeTpSl`` (``LimitCloseExecuted``, limitType 0 TP, 1 SL). Profit and
/// loss are paid from the storage's USDC (funded by the deployer). Not Ostium's code: its
/// interface and events as our adapter and our fake subgraph read them.
contract TestOstiumTrading {
    struct Trade {
        uint256 collateral;
        uint192 openPrice;
        uint192 tp;
        uint192 sl;
        address trader;
        uint32 leverage;
        uint16 pairIndex;
        uint8 index;
        bool buy;
        bool isDayTrade;
    }

    struct BuilderFee {
        address builder;
        uint32 builderFee;
    }

    struct PendingOrder {
        address trader;
        uint16 pairIndex;
        uint8 index; // for closes
        bool open;
        uint16 closePercentage;
        uint256 expectedPrice;
        uint256 slippageP;
        Trade trade; // for opens
        bool active;
    }

    error WrongLeverage(uint32 leverage);
    error WrongSL();
    error WrongTP();
    error NoTradeFound(address trader, uint16 pairIndex, uint8 index);
    error MaxTradesPerPairReached(address trader, uint16 pairIndex);
    error NotDelegate(address delegator, address sender);
    error NoDelegate(address delegator);
    error DelegatedActionFailed();
    error PairNotListed(uint16 pairIndex);
    error WrongParams();

    event MarketOrderInitiated(uint256 indexed orderId, address indexed trader, uint16 indexed pairIndex, bool open);
    event MarketOpenExecuted(
        uint256 indexed orderId,
        address indexed trader,
        uint16 indexed pairIndex,
        uint8 index,
        uint256 price,
        uint256 collateral,
        uint32 leverage,
        bool buy,
        uint192 tp,
        uint192 sl
    );
    event MarketCloseExecuted(
        uint256 indexed orderId,
        address indexed trader,
        uint16 indexed pairIndex,
        uint8 index,
        uint256 price,
        uint16 percentage,
        uint256 collateralClosed,
        uint256 payout
    );
    event OrderCancelled(uint256 indexed orderId, address indexed trader, string reason);
    event LimitCloseExecuted(
        uint256 indexed orderId,
        address indexed trader,
        uint16 indexed pairIndex,
        uint8 index,
        uint256 tradeId,
        uint8 limitType,
        uint256 price,
        uint256 collateralClosed
    );
    event TpUpdated(address indexed trader, uint16 indexed pairIndex, uint8 index, uint192 newTp);
    event SlUpdated(address indexed trader, uint16 indexed pairIndex, uint8 index, uint192 newSl);
    event DelegateAdded(address indexed delegator, address indexed delegate);
    event DelegateRemoved(address indexed delegator, address indexed delegate);

    uint8 public constant MAX_TRADES_PER_PAIR = 3;
    address public immutable owner;
    ITestOstiumTradingStorage public immutable storageContract;
    bool public autoExecute = true;
    uint256 public nextOrderId = 1;
    mapping(uint16 => uint256) public prices; // 18 decimals; 0 = pair not listed
    mapping(address => mapping(uint16 => mapping(uint8 => Trade))) private _trades;
    mapping(address => mapping(uint16 => mapping(uint8 => bool))) public isOpen;
    mapping(uint256 => PendingOrder) private _orders;
    mapping(address => address) public delegations;
    // The order id that opened each open trade (the subgraph's tradeID).
    mapping(address => mapping(uint16 => mapping(uint8 => uint256))) public tradeIds;
    address private _actingFor;

    constructor(address storage_) {
        owner = msg.sender;
        storageContract = ITestOstiumTradingStorage(storage_);
    }

    // --- the keeper and the oracle (owner) ------------------------------------------

    function setPrice(uint16 pairIndex, uint256 price) external {
        require(msg.sender == owner, "not owner");
        prices[pairIndex] = price;
    }

    function setAutoExecute(bool on) external {
        require(msg.sender == owner, "not owner");
        autoExecute = on;
    }

    function executeOrder(uint256 orderId) external {
        require(msg.sender == owner, "not owner");
        _execute(orderId);
    }

    /// @notice The keeper closes the whole trade at its take-profit or stop-loss, which the
    /// oracle price has reached (the take-profit first when both are).
    function executeTpSl(address trader, uint16 pairIndex, uint8 index) external {
        require(msg.sender == owner, "not owner");
        Trade storage t = _open(trader, pairIndex, index);
        uint256 price = prices[pairIndex];
        bool tpHit = t.tp != 0 && (t.buy ? price >= t.tp : price <= t.tp);
        bool slHit = t.sl != 0 && (t.buy ? price <= t.sl : price >= t.sl);
        if (!tpHit && !slHit) revert WrongParams();
        uint256 level = tpHit ? t.tp : t.sl;
        (uint256 closed, ) = _close(trader, pairIndex, index, level, 10000);
        _limitClosed(trader, pairIndex, index, tpHit ? 0 : 1, level, closed);
    }

    function _limitClosed(
        address trader,
        uint16 pairIndex,
        uint8 index,
        uint8 limitType,
        uint256 level,
        uint256 closed
    ) internal {
        uint256 tradeId = tradeIds[trader][pairIndex][index];
        emit LimitCloseExecuted(nextOrderId++, trader, pairIndex, index, tradeId, limitType, level, closed);
    }

    // --- traders ---------------------------------------------------------------------

    function openTrade(Trade calldata t, BuilderFee calldata, uint8 orderType, uint256 slippageP) external {
        address trader = _msgSender();
        if (t.trader != trader) revert WrongParams();
        if (prices[t.pairIndex] == 0) revert PairNotListed(t.pairIndex);
        if (t.leverage < 100 || t.leverage > 20000) revert WrongLeverage(t.leverage);
        if (t.tp != 0 && (t.buy ? t.tp <= t.openPrice : t.tp >= t.openPrice)) revert WrongTP();
        if (t.sl != 0 && (t.buy ? t.sl >= t.openPrice : t.sl <= t.openPrice)) revert WrongSL();
        if (orderType != 0 || t.collateral == 0) revert WrongParams();
        uint8 index = _freeIndex(trader, t.pairIndex);
        storageContract.pull(trader, t.collateral);
        uint256 orderId = nextOrderId++;
        PendingOrder storage order = _orders[orderId];
        order.trader = trader;
        order.pairIndex = t.pairIndex;
        order.index = index;
        order.open = true;
        order.expectedPrice = t.openPrice;
        order.slippageP = slippageP;
        order.trade = t;
        order.trade.index = index;
        order.active = true;
        emit MarketOrderInitiated(orderId, trader, t.pairIndex, true);
        if (autoExecute) _execute(orderId);
    }

    function closeTradeMarket(
        uint16 pairIndex,
        uint8 index,
        uint16 closePercentage,
        uint192 marketPrice,
        uint32 slippageP
    ) external {
        address trader = _msgSender();
        if (!isOpen[trader][pairIndex][index]) revert NoTradeFound(trader, pairIndex, index);
        if (closePercentage == 0 || closePercentage > 10000) revert WrongParams();
        uint256 orderId = nextOrderId++;
        PendingOrder storage order = _orders[orderId];
        order.trader = trader;
        order.pairIndex = pairIndex;
        order.index = index;
        order.open = false;
        order.closePercentage = closePercentage;
        order.expectedPrice = marketPrice;
        order.slippageP = slippageP;
        order.active = true;
        emit MarketOrderInitiated(orderId, trader, pairIndex, false);
        if (autoExecute) _execute(orderId);
    }

    function updateTp(uint16 pairIndex, uint8 index, uint192 newTp) external {
        Trade storage t = _open(_msgSender(), pairIndex, index);
        if (newTp != 0 && (t.buy ? newTp <= t.openPrice : newTp >= t.openPrice)) revert WrongTP();
        t.tp = newTp;
        emit TpUpdated(t.trader, pairIndex, index, newTp);
    }

    function updateSl(uint16 pairIndex, uint8 index, uint192 newSl) external {
        Trade storage t = _open(_msgSender(), pairIndex, index);
        if (newSl != 0 && (t.buy ? newSl >= t.openPrice : newSl <= t.openPrice)) revert WrongSL();
        t.sl = newSl;
        emit SlUpdated(t.trader, pairIndex, index, newSl);
    }

    function cancelOpenLimitOrder(uint16 pairIndex, uint8 index) external pure {
        revert NoTradeFound(address(0), pairIndex, index); // this stand-in takes market orders only
    }

    function setDelegate(address delegate) external {
        delegations[msg.sender] = delegate;
        emit DelegateAdded(msg.sender, delegate);
    }

    function removeDelegate() external {
        address delegate = delegations[msg.sender];
        delete delegations[msg.sender];
        emit DelegateRemoved(msg.sender, delegate);
    }

    /// @notice Run ``call_data`` on this contract as ``trader`` (its delegate sends it).
    function delegatedAction(address trader, bytes calldata call_data) external returns (bytes memory) {
        address delegate = delegations[trader];
        if (delegate == address(0)) revert NoDelegate(trader);
        if (delegate != msg.sender) revert NotDelegate(trader, msg.sender);
        _actingFor = trader;
        (bool ok, bytes memory result) = address(this).call(call_data);
        _actingFor = address(0);
        if (!ok) {
            if (result.length > 0) {
                assembly {
                    revert(add(result, 32), mload(result))
                }
            }
            revert DelegatedActionFailed();
        }
        return result;
    }

    function getTrade(address trader, uint16 pairIndex, uint8 index) external view returns (Trade memory) {
        return _trades[trader][pairIndex][index];
    }

    // --- internals ---------------------------------------------------------------------

    function _msgSender() internal view returns (address) {
        if (msg.sender == address(this) && _actingFor != address(0)) return _actingFor;
        return msg.sender;
    }

    function _freeIndex(address trader, uint16 pairIndex) internal view returns (uint8) {
        for (uint8 i = 0; i < MAX_TRADES_PER_PAIR; i++) {
            if (!isOpen[trader][pairIndex][i]) return i;
        }
        revert MaxTradesPerPairReached(trader, pairIndex);
    }

    function _open(address trader, uint16 pairIndex, uint8 index) internal view returns (Trade storage) {
        if (!isOpen[trader][pairIndex][index]) revert NoTradeFound(trader, pairIndex, index);
        return _trades[trader][pairIndex][index];
    }

    function _withinSlippage(uint256 price, uint256 expected, uint256 slippageP) internal pure returns (bool) {
        uint256 diff = price > expected ? price - expected : expected - price;
        return diff * 10000 <= slippageP * expected; // slippageP in hundredths of a percent
    }

    function _execute(uint256 orderId) internal {
        PendingOrder storage order = _orders[orderId];
        require(order.active, "no such pending order");
        order.active = false;
        uint256 price = prices[order.pairIndex];
        if (order.open) {
            if (!_withinSlippage(price, order.expectedPrice, order.slippageP)) {
                storageContract.pay(order.trader, order.trade.collateral);
                emit OrderCancelled(orderId, order.trader, "SLIPPAGE");
                return;
            }
            Trade memory t = order.trade;
            t.openPrice = uint192(price);
            _trades[order.trader][order.pairIndex][order.index] = t;
            isOpen[order.trader][order.pairIndex][order.index] = true;
            tradeIds[order.trader][order.pairIndex][order.index] = orderId;
            emit MarketOpenExecuted(
                orderId, order.trader, order.pairIndex, order.index, price, t.collateral, t.leverage, t.buy, t.tp, t.sl
            );
            return;
        }
        if (!isOpen[order.trader][order.pairIndex][order.index]) {
            emit OrderCancelled(orderId, order.trader, "NO_TRADE");
            return;
        }
        (uint256 closed, uint256 payout) = _close(order.trader, order.pairIndex, order.index, price, order.closePercentage);
        emit MarketCloseExecuted(
            orderId, order.trader, order.pairIndex, order.index, price, order.closePercentage, closed, payout
        );
    }

    /// @dev Close ``percentage`` (x100) of a trade at ``price``: pay out collateral plus profit.
    function _close(address trader, uint16 pairIndex, uint8 index, uint256 price, uint16 percentage)
        internal
        returns (uint256 closed, uint256 paid)
    {
        Trade storage trade = _trades[trader][pairIndex][index];
        closed = (trade.collateral * percentage) / 10000;
        // Profit or loss on the closed part: collateral x leverage x price move / open price.
        int256 move = int256(price) - int256(uint256(trade.openPrice));
        if (!trade.buy) move = -move;
        int256 pnl = (int256(closed) * int256(uint256(trade.leverage)) * move) / (int256(uint256(trade.openPrice)) * 100);
        int256 payout = int256(closed) + pnl;
        if (payout < 0) payout = 0;
        trade.collateral -= closed;
        if (percentage == 10000 || trade.collateral == 0) {
            isOpen[trader][pairIndex][index] = false;
        }
        paid = uint256(payout);
        if (paid > 0) storageContract.pay(trader, paid);
    }
}
