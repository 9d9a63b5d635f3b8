# The Python client example from the sigcast client guide (reference 004), unchanged except:
# - the token and URL come from SIGCAST_TOKEN and SIGCAST_URL;
# - the test certificate is trusted through WEBSOCKET_CLIENT_CA_BUNDLE (set by the test).
import os
import websocket
import json
import threading
import time
from websocket import create_connection

def on_message(ws, message):
    data = json.loads(message)
    print(f"收到信号: {data}")
    if data['type'] == 'buy':
        print(f"买入信号：{data['content']['symbol']}，价格：{data['content']['price']}")
    elif data['type'] == 'sell':
        print(f"卖出信号：{data['content']['symbol']}，价格：{data['content']['price']}")

def on_error(ws, error):
    print(f"WebSocket 错误: {error}")

def on_close(ws, close_status_code, close_msg):
    print("连接已关闭")

def on_open(ws):
    print("WebSocket 连接已建立")

# 创建带认证头的 WebSocket 连接
def create_authenticated_ws(url, token):
    ws = websocket.WebSocketApp(
        url,
        header=[f"Authorization: Bearer {token}"],
        on_message=on_message,
        on_error=on_error,
        on_close=on_close,
        on_open=on_open
    )
    return ws

# 使用示例
if __name__ == "__main__":
    token = os.environ["SIGCAST_TOKEN"]  # 替换为您的访问令牌
    ws_url = os.environ["SIGCAST_URL"]  # 替换为实际的 WebSocket 地址

    # 创建并运行 WebSocket 客户端
    ws = create_authenticated_ws(ws_url, token)
    ws.run_forever()
