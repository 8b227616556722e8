"""The trigger engine: stop-losses, take-profits, trailing stops and resting limit orders fired
when the market crosses them.

Positions close on their side of the book (``terms.closing_price``): a long at the bid, a
short at the ask. A long's stop fires when the bid falls to it, its take-profit when the bid
rises to it; a short's the other way round on the ask. A trailing stop follows the best
closing price since it was armed (``best_price``) and sits ``terms.trailing_stop_price``
behind it. A resting limit order opens a long when the ask falls to its price and a short
when the bid rises to it; a limit close fires where the position's take-profit would.

Modules, each depending only on those before it:

- ``index``: the Redis index of armed triggers per symbol (a cache of the database);
- ``trailing``: moving trailing stops as the market improves on their best price;
- ``queue``: the firing queue, where a tick enqueues what it crosses (one Redis script);
- ``firing``: firing one trigger, exactly once (closing, liquidating, executing a limit order);
- ``engine``: evaluating each price tick (the ``PRICE_TICK_HOOKS`` entry): moves trailing stops,
  enqueues crossed triggers;
- ``consumer``: the ``triggerfire`` process, firing the queue's entries in order per position;
- ``sweep``: the periodic safety net that evaluates from the database and heals the index.
"""
