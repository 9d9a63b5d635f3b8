// The JavaScript client example from the sigcast client guide (reference 004), run with the
// `ws` package. Unchanged except:
// - `WebSocket` comes from `ws` (the guide's example passes `headers`, which is ws's API);
// - the token and URL come from SIGCAST_TOKEN and SIGCAST_URL;
// - the test certificate is trusted through NODE_EXTRA_CA_CERTS (set by the test);
// - requestTestData() is called once the socket opens, as a user would.
const WebSocket = require('ws');

const token = process.env.SIGCAST_TOKEN; // 替换为您的访问令牌
const socket = new WebSocket(process.env.SIGCAST_URL, {
    headers: {
        'Authorization': `Bearer ${token}`
    }
});

socket.addEventListener('open', () => {
    console.log('已连接到 WebSocket 服务器');
});

socket.addEventListener('message', (event) => {
    const data = JSON.parse(event.data);
    console.log('收到信号:', data);
    if (data.type === 'buy') {
        console.log(`买入信号：${data.content.symbol}，价格：${data.content.price}`);
    } else if (data.type === 'sell') {
        console.log(`卖出信号：${data.content.symbol}，价格：${data.content.price}`);
    }
});

socket.addEventListener('close', () => {
    console.log('连接已关闭');
});

socket.addEventListener('error', (event) => {
    console.error('WebSocket 错误:', event);
});

// 发送测试命令
function requestTestData() {
    socket.send('test');
}

socket.addEventListener('open', requestTestData);
