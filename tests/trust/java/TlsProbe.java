// A real Java TLS client: connects, verifies the server against the JVM's trust store
// (-Djavax.net.ssl.trustStore=...), checks the host name as HTTPS clients do, and prints the
// issuer it trusted. Exit 0 on a verified handshake, 1 otherwise.
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;

public class TlsProbe {
    public static void main(String[] args) throws Exception {
        SSLSocketFactory factory = (SSLSocketFactory) SSLSocketFactory.getDefault();
        try (SSLSocket socket = (SSLSocket) factory.createSocket(args[0], Integer.parseInt(args[1]))) {
            SSLParameters params = socket.getSSLParameters();
            params.setEndpointIdentificationAlgorithm("HTTPS");
            params.setServerNames(List.of(new SNIHostName(args[2])));
            socket.setSSLParameters(params);
            socket.startHandshake();
            System.out.println("verified " + socket.getSession().getPeerPrincipal());
        } catch (javax.net.ssl.SSLException e) {
            System.out.println("refused " + e.getMessage());
            System.exit(1);
        }
    }
}
