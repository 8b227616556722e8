"""The ``local`` wallet signer: EIP-191 signatures and transactions mined on the local chain."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
from django.test import override_settings
from eth_account import Account
from eth_account.messages import encode_defunct
from web3 import Web3

from demo.localchain.chain import LocalChain, load_artifact
from marqetfi.core import crypto
from providers.base import EvmTransaction, TokenTransfer, WalletInfo
from providers.chains.evm import EvmChainClient
from providers.errors import ProviderError, ProviderNotConfigured
from providers.models import LocalWalletKey
from providers.wallets.local.adapter import LocalWalletProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def chain_settings(local_chain: LocalChain) -> Iterator[None]:
    chains = {str(local_chain.chain_id): {"name": "local", "rpc_url": local_chain.rpc_url, "tokens": {}}}
    with override_settings(EVM_CHAINS=chains):
        yield


@pytest.fixture
def provider() -> LocalWalletProvider:
    return LocalWalletProvider()


@pytest.fixture
def wallet(provider: LocalWalletProvider) -> WalletInfo:
    return provider.create_wallet(
        owner_ref="user-1", chain_type="ethereum", idempotency_key=str(uuid.uuid4())
    )


@pytest.fixture
def client(local_chain: LocalChain) -> EvmChainClient:
    return EvmChainClient(chain_id=local_chain.chain_id, rpc_url=local_chain.rpc_url, timeout=5)


def private_key_hex(wallet: WalletInfo) -> str:
    return crypto.decrypt(LocalWalletKey.objects.get(pk=wallet.provider_wallet_id).encrypted_private_key)


def fresh_address() -> str:
    return str(Account.create().address)


def test_health_check_reads_the_key_table(provider: LocalWalletProvider) -> None:
    provider.health_check()


@pytest.mark.parametrize("message", ["Sign in to MarqetFi", "Ünïcödé ✓\nsecond line", ""])
def test_sign_message_is_an_eip191_signature_by_the_wallet(
    provider: LocalWalletProvider, wallet: WalletInfo, message: str
) -> None:
    signature = provider.sign_message(provider_wallet_id=wallet.provider_wallet_id, message=message)

    assert signature.startswith("0x") and len(signature) == 2 + 130
    assert Account.recover_message(encode_defunct(text=message), signature=signature) == wallet.address


@pytest.mark.parametrize("wallet_id", ["5b0e7c1a-9d4f-4e3b-8a26-1f7c9d2e4b60", "not-a-uuid", ""])
def test_an_unknown_wallet_is_a_404(
    local_chain: LocalChain, chain_settings: None, provider: LocalWalletProvider, wallet_id: str
) -> None:
    with pytest.raises(ProviderError) as signing:
        provider.sign_message(provider_wallet_id=wallet_id, message="hello")
    with pytest.raises(ProviderError) as sending:
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet_id,
            transaction=EvmTransaction(chain_id=local_chain.chain_id, to=fresh_address(), value=1),
        )
    with pytest.raises(ProviderError) as reading:
        provider.get_wallet(provider_wallet_id=wallet_id)

    for caught in (signing, sending, reading):
        assert (caught.value.provider, caught.value.status_code, caught.value.retryable) == (
            "local",
            404,
            False,
        )


def test_sending_eth_is_mined_and_its_receipt_is_readable(
    local_chain: LocalChain,
    chain_settings: None,
    provider: LocalWalletProvider,
    wallet: WalletInfo,
    client: EvmChainClient,
) -> None:
    local_chain.send_eth(local_chain.deployer, wallet.address, 10**18)
    recipient = fresh_address()

    first = provider.sign_and_send_transaction(
        provider_wallet_id=wallet.provider_wallet_id,
        transaction=EvmTransaction(chain_id=local_chain.chain_id, to=recipient, value=12345),
    )
    second = provider.sign_and_send_transaction(
        provider_wallet_id=wallet.provider_wallet_id,
        transaction=EvmTransaction(chain_id=local_chain.chain_id, to=recipient, value=5),
    )

    assert first.chain_id == local_chain.chain_id
    receipts = [client.receipt(tx_hash=sent.tx_hash) for sent in (first, second)]
    assert [(r.success, r.from_address, r.to_address) for r in receipts if r is not None] == [
        (True, wallet.address, recipient)
    ] * 2
    assert local_chain.w3.eth.get_balance(Web3.to_checksum_address(recipient)) == 12345 + 5
    assert local_chain.w3.eth.get_transaction_count(Web3.to_checksum_address(wallet.address)) == 2


def test_an_erc20_transfer_is_mined_and_seen_as_a_token_transfer(
    local_chain: LocalChain,
    chain_settings: None,
    provider: LocalWalletProvider,
    wallet: WalletInfo,
    client: EvmChainClient,
) -> None:
    token = local_chain.deploy_token("USDC", 6, 10**12)
    local_chain.send_eth(local_chain.deployer, wallet.address, 10**18)
    local_chain.transfer_token(token, local_chain.deployer, wallet.address, 5_000_000)
    recipient = fresh_address()
    erc20 = local_chain.w3.eth.contract(address=token, abi=load_artifact("TestToken")["abi"])
    data = erc20.encode_abi("transfer", args=[Web3.to_checksum_address(recipient), 1_250_000])

    sent = provider.sign_and_send_transaction(
        provider_wallet_id=wallet.provider_wallet_id,
        transaction=EvmTransaction(chain_id=local_chain.chain_id, to=token, data=data),
    )

    receipt = client.receipt(tx_hash=sent.tx_hash)
    assert receipt is not None
    assert (receipt.success, receipt.from_address, receipt.to_address) == (True, wallet.address, token)
    assert client.token_transfers_to(
        address=recipient, tokens=[token], from_block=receipt.block_number, to_block=receipt.block_number
    ) == [
        TokenTransfer(
            tx_hash=sent.tx_hash,
            log_index=0,
            block_number=receipt.block_number,
            token_address=token,
            from_address=wallet.address,
            to_address=recipient,
            raw=1_250_000,
        )
    ]
    assert erc20.functions.balanceOf(wallet.address).call() == 3_750_000


def test_a_call_that_would_revert_is_refused_before_anything_is_sent(
    local_chain: LocalChain, chain_settings: None, provider: LocalWalletProvider, wallet: WalletInfo
) -> None:
    token = local_chain.deploy_token("EMPTY", 6, 1)
    local_chain.send_eth(local_chain.deployer, wallet.address, 10**18)
    erc20 = local_chain.w3.eth.contract(address=token, abi=load_artifact("TestToken")["abi"])
    data = erc20.encode_abi("transfer", args=[Web3.to_checksum_address(fresh_address()), 1])

    with pytest.raises(ProviderError, match="would revert") as caught:
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet.provider_wallet_id,
            transaction=EvmTransaction(chain_id=local_chain.chain_id, to=token, data=data),
        )

    assert caught.value.retryable is False
    assert local_chain.w3.eth.get_transaction_count(Web3.to_checksum_address(wallet.address)) == 0


def test_with_a_gas_limit_a_reverting_call_is_mined_as_a_failure(
    local_chain: LocalChain,
    chain_settings: None,
    provider: LocalWalletProvider,
    wallet: WalletInfo,
    client: EvmChainClient,
) -> None:
    token = local_chain.deploy_token("EMPTY", 6, 1)
    local_chain.send_eth(local_chain.deployer, wallet.address, 10**18)
    erc20 = local_chain.w3.eth.contract(address=token, abi=load_artifact("TestToken")["abi"])
    data = erc20.encode_abi("transfer", args=[Web3.to_checksum_address(fresh_address()), 1])

    sent = provider.sign_and_send_transaction(
        provider_wallet_id=wallet.provider_wallet_id,
        transaction=EvmTransaction(chain_id=local_chain.chain_id, to=token, data=data, gas_limit=100_000),
    )

    receipt = client.receipt(tx_hash=sent.tx_hash)
    assert receipt is not None and receipt.success is False


def test_a_wallet_without_funds_gets_the_nodes_refusal(
    local_chain: LocalChain, chain_settings: None, provider: LocalWalletProvider, wallet: WalletInfo
) -> None:
    with pytest.raises(ProviderError) as caught:
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet.provider_wallet_id,
            transaction=EvmTransaction(
                chain_id=local_chain.chain_id, to=fresh_address(), value=1, gas_limit=21_000
            ),
        )

    assert caught.value.provider == f"evm:{local_chain.chain_id}"
    assert caught.value.retryable is False
    assert "may have been broadcast" not in str(caught.value)


def test_a_chain_without_rpc_is_not_configured(
    chain_settings: None, provider: LocalWalletProvider, wallet: WalletInfo
) -> None:
    with pytest.raises(ProviderNotConfigured):
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet.provider_wallet_id,
            transaction=EvmTransaction(chain_id=999_999, to=fresh_address(), value=1),
        )


@pytest.mark.parametrize(
    ("transaction", "message"),
    [
        (EvmTransaction(chain_id=1, to="0x1234"), "not an EVM address"),
        (EvmTransaction(chain_id=1, to="0x" + "11" * 20, value=-1), "negative"),
        (EvmTransaction(chain_id=1, to="0x" + "11" * 20, gas_limit=0), "positive"),
        (EvmTransaction(chain_id=1, to="0x" + "11" * 20, data="transfer"), "hex bytes"),
    ],
)
def test_a_malformed_transaction_is_a_400(
    provider: LocalWalletProvider, wallet: WalletInfo, transaction: EvmTransaction, message: str
) -> None:
    with pytest.raises(ProviderError, match=message) as caught:
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet.provider_wallet_id, transaction=transaction
        )

    assert caught.value.status_code == 400


def test_the_private_key_is_never_logged_or_put_in_an_error(
    local_chain: LocalChain,
    chain_settings: None,
    provider: LocalWalletProvider,
    wallet: WalletInfo,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = private_key_hex(wallet).removeprefix("0x")
    local_chain.send_eth(local_chain.deployer, wallet.address, 10**18)
    caplog.set_level(logging.DEBUG)

    signature = provider.sign_message(provider_wallet_id=wallet.provider_wallet_id, message="hello")
    sent = provider.sign_and_send_transaction(
        provider_wallet_id=wallet.provider_wallet_id,
        transaction=EvmTransaction(chain_id=local_chain.chain_id, to=fresh_address(), value=1),
    )
    with pytest.raises(ProviderError) as caught:
        provider.sign_and_send_transaction(
            provider_wallet_id=wallet.provider_wallet_id,
            transaction=EvmTransaction(chain_id=local_chain.chain_id, to=fresh_address(), value=10**30),
        )

    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    for text in (logged, signature, sent.tx_hash, str(caught.value), repr(caught.value.response)):
        assert key.lower() not in text.lower()


def test_a_key_that_does_not_decrypt_is_an_error_without_the_ciphertext(
    provider: LocalWalletProvider, wallet: WalletInfo
) -> None:
    LocalWalletKey.objects.filter(pk=wallet.provider_wallet_id).update(encrypted_private_key="gAAAAAbroken")

    with pytest.raises(ProviderError, match="cannot be decrypted") as caught:
        provider.sign_message(provider_wallet_id=wallet.provider_wallet_id, message="hello")

    assert caught.value.retryable is False
    assert "gAAAAAbroken" not in str(caught.value)


def test_a_key_that_is_not_the_wallets_is_refused(provider: LocalWalletProvider, wallet: WalletInfo) -> None:
    other = Account.create()
    LocalWalletKey.objects.filter(pk=wallet.provider_wallet_id).update(
        encrypted_private_key=crypto.encrypt(other.key.hex())
    )

    with pytest.raises(ProviderError, match="not the key of its address"):
        provider.sign_message(provider_wallet_id=wallet.provider_wallet_id, message="hello")
